"""Bootstrap intervals and paired tests agree with scipy's reference implementations on fixed data."""

from __future__ import annotations

import random

import numpy
import pytest
from scipy import stats as scipy_stats

from fto.orchestrator.eval.stats import bootstrap_interval, paired_comparison, percentile, sign_flip_p_value

# Fixed data: 60 per-example scores of two models, b better on some examples and worse on others.
_rng = random.Random(7)
A = [float(_rng.random() < 0.55) for _ in range(60)]
B = [float(x if _rng.random() < 0.7 else 1 - x) for x in A]
B = [1.0 if i % 9 == 0 else x for i, x in enumerate(B)]  # a small real gain


def test_percentile_interpolates_like_numpy():
    assert percentile([0.0, 10.0], 0.25) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 0.5) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 1.0) == 4.0 and percentile([7.0], 0.3) == 7.0


def test_bootstrap_interval_is_scipys_percentile_bootstrap_on_the_same_draws():
    ours = bootstrap_interval(A, seed=1, resamples=4000)
    theirs = scipy_stats.bootstrap(
        (A,),
        statistic=lambda x, axis: x.mean(axis=axis),
        n_resamples=4000,
        method="percentile",
        batch=4000,
        random_state=numpy.random.default_rng(1),
    ).confidence_interval
    # the same generator draws the same resamples: the bounds are scipy's to rounding
    assert ours == pytest.approx((theirs.low, theirs.high), abs=1e-12)


def test_a_corpus_statistic_is_resampled_on_the_same_draws_as_a_mean():
    from fto.orchestrator.eval.stats import bootstrap_statistic

    assert bootstrap_statistic(A, lambda rows: sum(rows) / len(rows), seed=2) == pytest.approx(
        bootstrap_interval(A, seed=2), abs=1e-12
    )


def test_paired_p_value_matches_scipys_permutation_test():
    differences = [y - x for x, y in zip(A, B, strict=True)]
    ours = sign_flip_p_value(differences, seed=3, resamples=4000)
    theirs = scipy_stats.permutation_test(
        (A, B),
        statistic=lambda x, y, axis: (y - x).mean(axis=axis),
        permutation_type="samples",
        n_resamples=4000,
        alternative="two-sided",
        random_state=3,
    ).pvalue
    assert ours == pytest.approx(theirs, abs=0.02)


def test_interval_and_p_value_tell_the_same_story():
    noise = paired_comparison(A, B, seed=0)
    assert noise.difference == pytest.approx(sum(B) / 60 - sum(A) / 60)
    assert not noise.significant and noise.p_value > 0.05
    lower = paired_comparison([2.0, 2.1, 1.9] * 20, [1.0, 1.1, 0.9] * 20)
    assert "significant: b is better" in lower.describe("a", "b", lower_is_better=True)
    assert "significant: b is worse" in lower.describe("a", "b")


def test_holm_adjusts_a_family_step_down():
    from fto.orchestrator.eval.stats import holm

    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    # sorted: 0.005×4 = 0.02, 0.01×3 = 0.03, 0.03×2 = 0.06, 0.04×1 = 0.04 → kept monotone: 0.06
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0]) and holm([]) == []


def test_every_fine_tuned_model_is_compared_with_every_other_and_its_base(fto_home):
    import json

    from fto.orchestrator.eval.report import paired_tests
    from fto.orchestrator.paths import experiment_dir
    from fto.orchestrator.store import Store
    from fto.schemas import JobSpec
    from fto.schemas.results import ComparisonKind, ModelResult, ModelRole, Score, Target

    spec = JobSpec.model_validate({"name": "x", "data": {"train": "t.jsonl"}})
    experiment, _ = Store().create_experiment(spec, None, [])
    folder = experiment_dir(experiment.id) / "eval"
    folder.mkdir(parents=True)
    scores = {
        "local/base": [0.0] * 40,
        "local/fine-tuned": [1.0] * 30 + [0.0] * 10,
        "sim/base": [0.0] * 40,
        "sim/fine-tuned": [1.0] * 10 + [0.0] * 30,
    }
    models = []
    for label, values in scores.items():
        rows = [{"line": i + 1, "output": "", "scores": {"exact_match": v}} for i, v in enumerate(values)]
        (folder / f"{label.replace('/', '.')}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        section, _, kind = label.partition("/")  # the test names its own models; fto never parses a label
        role = ModelRole.BASE if kind == "base" else ModelRole.FINE_TUNED
        target = Target(label=label, section=section, role=role, model=label, job=f"job-{section}")
        models.append(ModelResult(target=target, examples=40, scores={"exact_match": Score(value=sum(values) / 40)}))
    found = paired_tests(Store(), experiment, models, ["exact_match"])
    pairs = {(c.a.label, c.b.label): c for c in found}
    assert set(pairs) == {("local/base", "local/fine-tuned"), ("sim/base", "sim/fine-tuned"),
                          ("local/fine-tuned", "sim/fine-tuned")}  # fmt: skip
    between = pairs[("local/fine-tuned", "sim/fine-tuned")]
    assert between.kind == ComparisonKind.BETWEEN and (between.wins, between.losses, between.ties) == (0, 20, 20)
    assert between.difference == pytest.approx(-0.5) and between.significant
    assert "sim/fine-tuned is worse" in between.text and "0 better, 20 worse, 20 tied" in between.text
    assert all(c.p_holm >= c.p_value for c in found)  # three tests of one scorer: adjusted upwards
