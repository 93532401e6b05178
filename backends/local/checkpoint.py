"""Checkpoints: trainable weights, optimizer, scheduler, RNG and data position, so a run continues exactly."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch

KEEP = 2  # the newest checkpoints kept; older ones are removed


def save(root: Path, step: int, state: dict[str, Any]) -> Path:
    """Write atomically (a half-written checkpoint is never the latest)."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}.pt"
    tmp = final.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, final)
    for old in sorted(root.glob("step-*.pt"))[:-KEEP]:
        old.unlink()
    return final


def latest(root: Path) -> Path | None:
    """The newest checkpoint file under `root`, if any."""
    found = sorted(root.glob("step-*.pt")) if root.is_dir() else []
    return found[-1] if found else None


def load(path: Path) -> dict[str, Any]:
    """A checkpoint's saved training state."""
    return torch.load(path, weights_only=False)


def remove_all(root: Path) -> None:
    """Delete every checkpoint under `root`."""
    shutil.rmtree(root, ignore_errors=True)
