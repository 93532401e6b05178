"""Overfitting read from loss curves: validation loss rising over several evaluations while training loss falls."""

from __future__ import annotations

from datetime import UTC, datetime

from fto.orchestrator.eval.overfit import best_checkpoint, detect
from fto.schemas import JobEvent, Metric


def _curve(valid: list[float], train: list[float]) -> list[Metric]:
    return [Metric(step=i + 1, loss=t, valid_loss=v) for i, (v, t) in enumerate(zip(valid, train, strict=True))]


def test_rising_validation_loss_with_falling_training_loss_is_overfitting():
    found = detect(_curve([2.0, 1.5, 1.0, 1.1, 1.2, 1.4], [2.0, 1.4, 1.0, 0.7, 0.5, 0.3]))
    assert found is not None and (found.best_step, found.best_valid_loss, found.last_step) == (3, 1.0, 6)
    assert "validation loss rose from 1.0000 at step 3 to 1.4000 at step 6" in found.text()


def test_what_is_not_overfitting():
    assert detect(_curve([2.0, 1.5, 1.0, 0.9], [2.0, 1.5, 1.0, 0.9])) is None  # still improving
    assert detect(_curve([2.0, 1.0, 1.005, 1.006, 1.008], [2, 1, 0.9, 0.8, 0.7])) is None  # a rise within noise
    assert detect(_curve([2.0, 1.0, 1.2, 1.4, 1.6], [2.0, 1.0, 1.3, 1.5, 1.7])) is None  # both rise: diverging
    assert detect(_curve([2.0, 1.0, 1.2], [2.0, 1.0, 0.5])) is None  # too few evaluations after the best
    assert detect([Metric(step=s, loss=1.0 / s) for s in range(1, 20)]) is None  # no validation loss at all


def test_the_best_checkpoint_is_the_last_saved_at_or_before_the_best_step():
    now = datetime.now(UTC)
    events = [JobEvent(created_at=now, message=f"checkpoint {s}", data={"step": s, "checkpoint": f"/ckpt/{s}"})
              for s in (5, 10, 15, 20)]  # fmt: skip
    assert best_checkpoint(events, 12) == (10, "/ckpt/10")
    assert best_checkpoint(events, 4) is None
