import pytest

from orchestrator.eval.scorers import exact_match, token_f1


def test_exact_match_ignores_surrounding_space_only():
    assert exact_match(" bird\n", "bird") == 1.0
    assert exact_match("Bird", "bird") == 0.0


@pytest.mark.parametrize(
    ("prediction", "reference", "score"),
    [
        ("the cat sat", "the cat sat", 1.0),
        ("The cat, sat!", "the cat sat", 1.0),
        ("cat", "the cat sat", 0.5),  # precision 1, recall 1/3
        ("dog", "the cat sat", 0.0),
        ("", "", 1.0),
        ("", "cat", 0.0),
    ],
)
def test_token_f1(prediction, reference, score):
    assert token_f1(prediction, reference) == pytest.approx(score)
