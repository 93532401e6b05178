"""How sure a score is: one bootstrap (intervals of a mean, or of any corpus-level statistic) and one paired test
of two models on the same examples, vectorised with numpy.

Checked against scipy.stats.bootstrap and scipy.stats.permutation_test in tests/orchestrator/eval/test_stats.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import TypeVar

import numpy as np

RESAMPLES = 2000
LEVEL = 0.95
CELLS = 4_000_000  # values drawn per block: memory stays bounded whatever the number of examples

Item = TypeVar("Item")


def percentile(ordered: Sequence[float] | np.ndarray, quantile: float) -> float:
    """The q-quantile (0 ≤ q ≤ 1) of sorted values, interpolating linearly between neighbours (numpy's default)."""
    position = quantile * (len(ordered) - 1)
    below = int(position)
    above = min(below + 1, len(ordered) - 1)
    return float(ordered[below] + (ordered[above] - ordered[below]) * (position - below))


def _blocks(resamples: int, size: int) -> Iterator[int]:
    """How many resamples to draw at a time."""
    step = max(1, CELLS // max(size, 1))
    for start in range(0, resamples, step):
        yield min(step, resamples - start)


def resampled_indices(size: int, seed: int, resamples: int = RESAMPLES) -> Iterator[np.ndarray]:
    """Blocks of bootstrap resamples: rows of `size` example indices drawn with replacement."""
    rng = np.random.default_rng(seed)
    for count in _blocks(resamples, size):
        yield rng.integers(0, size, (count, size))


def bootstrap_means(values: Sequence[float], seed: int, resamples: int = RESAMPLES) -> np.ndarray:
    """Means of `resamples` resamples (with replacement) of `values`, sorted."""
    data = np.asarray(values, dtype=float)
    means = np.concatenate([data[rows].mean(axis=1) for rows in resampled_indices(len(data), seed, resamples)])
    return np.sort(means)


def _interval(ordered: np.ndarray | list[float], level: float) -> tuple[float, float]:
    tail = (1 - level) / 2
    return percentile(ordered, tail), percentile(ordered, 1 - tail)


def bootstrap_interval(
    values: Sequence[float], seed: int = 0, level: float = LEVEL, resamples: int = RESAMPLES
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean."""
    if not len(values):
        return (float("nan"), float("nan"))
    return _interval(bootstrap_means(values, seed, resamples), level)


def bootstrap_statistic(
    items: Sequence[Item],
    statistic: Callable[[list[Item]], float],
    seed: int = 0,
    level: float = LEVEL,
    resamples: int = RESAMPLES,
) -> tuple[float, float]:
    """Percentile bootstrap interval of a corpus-level statistic (macro-F1 over labels), on the same draws."""
    if not items:
        return (float("nan"), float("nan"))
    values = [statistic([items[i] for i in row]) for rows in resampled_indices(len(items), seed, resamples)
              for row in rows]  # fmt: skip
    return _interval(sorted(values), level)


def sign_flip_p_value(differences: Sequence[float], seed: int = 0, resamples: int = RESAMPLES) -> float:
    """Two-sided p-value of a paired permutation test: under "no difference", each pair's sign is a coin flip."""
    data = np.asarray(differences, dtype=float)
    observed = abs(data.mean())
    rng = np.random.default_rng(seed)
    as_extreme = 0
    for count in _blocks(resamples, len(data)):
        signs = np.where(rng.random((count, len(data))) < 0.5, 1.0, -1.0)
        as_extreme += int((np.abs((signs * data).mean(axis=1)) >= observed - 1e-12).sum())
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
