"""Scorers on real eval sets (tests/fixtures/data), and the statistics that say whether a difference is real."""

import json

import pytest

from fto.orchestrator.data.read import read_records
from fto.orchestrator.errors import ConfigError
from fto.orchestrator.eval import scorers
from fto.orchestrator.eval.stats import bootstrap_interval, paired_comparison
from fto.schemas import Message
from tests.conftest import SHARED_DATA


def _ref(text: str) -> Message:
    return Message(role="assistant", content=text)


def test_exact_and_normalised_match():
    assert scorers.exact_match(" bird\n", _ref("bird")) == 1.0
    assert scorers.exact_match("Bird.", _ref("bird")) == 0.0
    assert scorers.normalized_match("Bird.", _ref("bird")) == 1.0


@pytest.mark.parametrize(
    ("prediction", "reference", "f1", "rouge"),
    [
        ("the cat sat", "the cat sat", 1.0, 1.0),
        ("The cat, sat!", "the cat sat", 1.0, 1.0),
        ("cat", "the cat sat", 0.5, 0.5),
        ("sat the cat", "the cat sat", 1.0, 2 / 3),  # same tokens, different order: LCS is 2 of 3
        ("dog", "the cat sat", 0.0, 0.0),
        ("", "", 1.0, 1.0),
    ],
)
def test_token_f1_and_rouge_l(prediction, reference, f1, rouge):
    assert scorers.token_f1(prediction, _ref(reference)) == pytest.approx(f1)
    assert scorers.rouge_l(prediction, _ref(reference)) == pytest.approx(rouge)


def test_numeric_match_reads_gsm8k_answers():
    rows = list(read_records(SHARED_DATA / "gsm8k" / "test.jsonl"))[:200]
    for row in rows:
        reference = row.messages[-1]
        number = reference.content.split("####")[-1].strip()
        assert scorers.numeric_match(f"Let me think... so the answer is {number}.", reference) == 1.0
        assert scorers.numeric_match(reference.content, reference) == 1.0
        assert scorers.numeric_match("I don't know", reference) == 0.0
    assert scorers.numeric_match("It costs 1,250 dollars", _ref("#### 1250")) == 1.0


def test_classification_accuracy_and_macro_f1_on_dbpedia_labels():
    rows = list(read_records(SHARED_DATA / "openai-cookbook" / "dbpedia_samples.jsonl"))
    references = [r.messages[-1].content for r in rows]
    assert len(set(references)) == 14
    perfect = [(scorers.normalize(x), scorers.normalize(x)) for x in references]
    assert scorers.macro_f1(perfect) == 1.0
    always_first = [(scorers.normalize(references[0]), scorers.normalize(x)) for x in references]
    share = references.count(references[0]) / len(references)
    expected = (2 * share / (1 + share)) / 14  # one class scores F1 = 2p/(1+p); the other 13 score 0
    assert scorers.macro_f1(always_first) == pytest.approx(expected)


def test_json_validity_and_match():
    assert scorers.json_valid('{"a": 1}', _ref("")) == 1.0 and scorers.json_valid("{a: 1}", _ref("")) == 0.0
    assert scorers.json_match('{"b": 2, "a": [1]}', _ref('{"a":[1],"b":2}')) == 1.0
    assert scorers.json_match('{"a": 2}', _ref('{"a": 1}')) == 0.0


def test_tool_call_match_on_the_drone_set():
    row = next(read_records(SHARED_DATA / "openai-cookbook" / "drone_training.jsonl"))
    reference = next(m for m in row.messages if m.tool_calls)
    call = reference.tool_calls[0]
    exact = json.dumps({"name": call.name, "arguments": json.loads(call.arguments)})
    assert scorers.tool_call_match(exact, reference) == 1.0
    assert scorers.tool_call_match(json.dumps({"name": call.name, "arguments": {"x": 1}}), reference) == 0.5
    assert scorers.tool_call_match(json.dumps({"name": "other", "arguments": {}}), reference) == 0.0
    assert scorers.tool_call_match("not json", reference) == 0.0


def test_custom_scorers_by_module_path(tmp_path, monkeypatch):
    (tmp_path / "my_scorers.py").write_text(
        "def shouty(output, reference, example):\n    return float(output.isupper())\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    scorer = scorers.get("my_scorers:shouty")
    assert scorer.score("OK", _ref("x"), None) == 1.0 and scorer.score("ok", _ref("x"), None) == 0.0
    with pytest.raises(ConfigError, match="unknown scorer 'bleu'"):
        scorers.get("bleu")


def test_bootstrap_interval_brackets_the_mean():
    values = [1.0] * 30 + [0.0] * 70
    low, high = bootstrap_interval(values)
    assert low < 0.3 < high and low > 0.18 and high < 0.42


def test_paired_comparison_tells_a_real_difference_from_noise():
    base = [0.0, 1.0] * 50
    better = [1.0] * 100
    real = paired_comparison(base, better)
    assert real.significant and real.difference == pytest.approx(0.5) and real.p_value < 0.01
    flipped = [1.0 - x for x in base]  # as good on average, on other examples
    noise = paired_comparison(base, flipped)
    assert not noise.significant and "within noise" in noise.describe("a", "b")
