"""Overfitting, read from a job's loss curves: validation loss rising over several evaluations while training loss
falls. The best step is where validation loss was lowest; `eval: {checkpoint: best}` evaluates the checkpoint
saved closest before it instead of the last model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from fto.schemas import JobEvent, Metric

PATIENCE = 3  # evaluations after the best, each above it, before the rise counts
MIN_RISE = 0.02  # and the last at least 2% above the best: noise is not overfitting


@dataclass(frozen=True)
class Overfit:
    """Where validation loss was best, and how far it rose after."""

    best_step: int
    best_valid_loss: float
    last_step: int
    last_valid_loss: float
    train_loss_at_best: float | None
    last_train_loss: float | None

    def text(self) -> str:
        """One line for events and reports."""
        return (
            f"overfitting: validation loss rose from {self.best_valid_loss:.4f} at step {self.best_step} to "
            f"{self.last_valid_loss:.4f} at step {self.last_step} while training loss fell "
            f"({_num(self.train_loss_at_best)} → {_num(self.last_train_loss)}); the best step is {self.best_step}"
        )

    def to_json(self) -> dict[str, Any]:
        """The finding as JSON-ready data."""
        return asdict(self)


def _num(value: float | None) -> str:
    return "?" if value is None else f"{value:.4f}"


def detect(metrics: Sequence[Metric], patience: int = PATIENCE) -> Overfit | None:
    """Overfitting in a loss curve, or None (too few evaluations, or validation loss did not keep rising)."""
    evaluated = [m for m in metrics if m.valid_loss is not None]
    if len(evaluated) < patience + 1:
        return None
    best = min(evaluated, key=lambda m: (m.valid_loss, m.step))
    after = [m for m in evaluated if m.step > best.step]
    assert best.valid_loss is not None
    if len(after) < patience or not all(m.valid_loss is not None and m.valid_loss > best.valid_loss for m in after):
        return None
    last = after[-1]
    assert last.valid_loss is not None
    if last.valid_loss < best.valid_loss * (1 + MIN_RISE):
        return None
    train_at_best = _train_loss(metrics, best.step)
    last_train = _train_loss(metrics, last.step)
    if train_at_best is not None and last_train is not None and last_train >= train_at_best:
        return None  # both rose: training went wrong, which is not overfitting
    return Overfit(best.step, best.valid_loss, last.step, last.valid_loss, train_at_best, last_train)


def _train_loss(metrics: Sequence[Metric], step: int) -> float | None:
    """Mean training loss over the few steps up to `step` (one step's loss is noisy)."""
    window = [m.loss for m in metrics if m.loss is not None and step - 3 < m.step <= step]
    return sum(window) / len(window) if window else None


def best_checkpoint(events: Sequence[JobEvent], step: int) -> tuple[int, str] | None:
    """(step, model) of the checkpoint saved last at or before `step`, from a job's checkpoint events."""
    saved = [(int(e.data["step"]), str(e.data["checkpoint"])) for e in events
             if "checkpoint" in e.data and "step" in e.data and int(e.data["step"]) <= step]  # fmt: skip
    return max(saved) if saved else None
