"""How sure a score is: bootstrap intervals, and paired comparisons of two models on the same examples.

Pure Python (the base install has no numpy); checked against scipy.stats.bootstrap and
scipy.stats.permutation_test in tests/orchestrator/eval/test_stats.py.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean

RESAMPLES = 2000
LEVEL = 0.95


def percentile(ordered: Sequence[float], quantile: float) -> float:
    """The q-quantile (0 ≤ q ≤ 1) of sorted values, interpolating linearly between neighbours (numpy's default)."""
    position = quantile * (len(ordered) - 1)
    below = int(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def bootstrap_means(values: Sequence[float], seed: int, resamples: int = RESAMPLES) -> list[float]:
    """Means of `resamples` resamples (with replacement) of `values`, sorted."""
    rng = random.Random(seed)
    size = len(values)
    return sorted(fmean(values[rng.randrange(size)] for _ in range(size)) for _ in range(resamples))


def bootstrap_interval(
    values: Sequence[float], seed: int = 0, level: float = LEVEL, resamples: int = RESAMPLES
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean."""
    if not values:
        return (float("nan"), float("nan"))
    means = bootstrap_means(values, seed, resamples)
    tail = (1 - level) / 2
    return percentile(means, tail), percentile(means, 1 - tail)


def sign_flip_p_value(differences: Sequence[float], seed: int = 0, resamples: int = RESAMPLES) -> float:
    """Two-sided p-value of a paired permutation test: under "no difference", each pair's sign is a coin flip."""
    observed = abs(fmean(differences))
    rng = random.Random(seed)
    as_extreme = sum(
        abs(fmean(d if rng.random() < 0.5 else -d for d in differences)) >= observed - 1e-12 for _ in range(resamples)
    )
    return (as_extreme + 1) / (resamples + 1)  # the observed labelling counts as one of the permutations


@dataclass(frozen=True)
class Comparison:
    """Model b against model a, on the same examples."""

    difference: float  # mean of b − a
    interval: tuple[float, float]  # 95% bootstrap interval of the difference
    p_value: float  # two-sided, paired permutation test
    significant: bool  # the interval excludes zero

    def describe(self, base: str, other: str, lower_is_better: bool = False) -> str:
        """One line: the difference with its interval and p-value, and which way it goes."""
        low, high = self.interval
        if not self.significant:
            verdict = "within noise"
        else:
            better = (self.difference < 0) == lower_is_better
            verdict = f"significant: {other} is {'better' if better else 'worse'}"
        interval = f"95% CI {low:+.3f} … {high:+.3f}"
        return f"{other} vs {base}: {self.difference:+.3f} ({interval}, p={self.p_value:.3g}; {verdict})"


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (in their given order): each adjusted p-value may be
    compared with the level directly, and the family's chance of any false "significant" stays within it."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def wins_losses_ties(
    first: Sequence[float], second: Sequence[float], lower_is_better: bool = False
) -> tuple[int, int, int]:
    """Examples where `second` beats `first`, loses to it, or ties (per-example scores of the same examples)."""
    sign = -1 if lower_is_better else 1
    wins = sum(sign * (y - x) > 1e-12 for x, y in zip(first, second, strict=True))
    losses = sum(sign * (y - x) < -1e-12 for x, y in zip(first, second, strict=True))
    return wins, losses, len(first) - wins - losses


def paired_comparison(base: Sequence[float], other: Sequence[float], seed: int = 0) -> Comparison:
    """Compare two models scored on the same examples, resampling examples (not models) to keep the pairing."""
    if len(base) != len(other) or not base:
        raise ValueError("a paired comparison needs the same, non-empty set of examples")
    differences = [y - x for x, y in zip(base, other, strict=True)]
    low, high = bootstrap_interval(differences, seed)
    return Comparison(fmean(differences), (low, high), sign_flip_p_value(differences, seed), not low <= 0 <= high)
