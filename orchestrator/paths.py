"""Where fto keeps its state: ~/.fto, or $FTO_HOME."""

from __future__ import annotations

import os
from pathlib import Path


def fto_home() -> Path:
    """Where fto keeps its state: $FTO_HOME, else ~/.fto (created on first use)."""
    home = Path(os.environ.get("FTO_HOME") or Path.home() / ".fto")
    home.mkdir(parents=True, exist_ok=True)
    return home


def experiment_dir(experiment_id: str) -> Path:
    """An experiment's folder under FTO_HOME (eval set, outputs, reports)."""
    path = fto_home() / "experiments" / experiment_id
    path.mkdir(parents=True, exist_ok=True)
    return path


def backend_dir(backend: str) -> Path:
    """A backend's own working area (the local backend keeps its job folders here)."""
    path = fto_home() / "backends" / backend
    path.mkdir(parents=True, exist_ok=True)
    return path
