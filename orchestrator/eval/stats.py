"""How sure a score is: bootstrap intervals, and paired comparisons of two models on the same examples."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean

RESAMPLES = 2000


def bootstrap_interval(values: Sequence[float], seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean."""
    if not values:
        return (float("nan"), float("nan"))
    rng = random.Random(seed)
    n = len(values)
    means = sorted(fmean(values[rng.randrange(n)] for _ in range(n)) for _ in range(RESAMPLES))
    cut = (1 - level) / 2
    return means[int(cut * RESAMPLES)], means[min(RESAMPLES - 1, int((1 - cut) * RESAMPLES))]


@dataclass(frozen=True)
class Comparison:
    difference: float  # mean of b − a
    interval: tuple[float, float]  # 95% bootstrap interval of the difference
    p_value: float  # two-sided, paired bootstrap
    significant: bool  # the interval excludes zero

    def describe(self, a: str, b: str) -> str:
        verdict = "significant" if self.significant else "within noise"
        low, high = self.interval
        return f"{b} vs {a}: {self.difference:+.3f} (95% CI {low:+.3f} … {high:+.3f}, p={self.p_value:.3g}; {verdict})"


def paired_comparison(a: Sequence[float], b: Sequence[float], seed: int = 0) -> Comparison:
    """Compare two models scored on the same examples, resampling examples (not models) to keep the pairing."""
    if len(a) != len(b) or not a:
        raise ValueError("a paired comparison needs the same, non-empty set of examples")
    diffs = [y - x for x, y in zip(a, b, strict=True)]
    rng = random.Random(seed)
    n = len(diffs)
    means = sorted(fmean(diffs[rng.randrange(n)] for _ in range(n)) for _ in range(RESAMPLES))
    low, high = means[int(0.025 * RESAMPLES)], means[int(0.975 * RESAMPLES)]
    observed = fmean(diffs)
    # p: how often a resample lands on the other side of zero from the observed mean (two-sided).
    other_side = sum(1 for m in means if (m <= 0 if observed > 0 else m >= 0))
    p = min(1.0, 2 * (other_side + 1) / (RESAMPLES + 1)) if observed != 0 else 1.0
    return Comparison(observed, (low, high), p, not (low <= 0 <= high))
