"""Where fto keeps its state: ~/.fto, or $FTO_HOME."""

from __future__ import annotations

import os
from pathlib import Path


def fto_home() -> Path:
    """Where fto keeps its state: $FTO_HOME, else ~/.fto (created on first use); a clear error when it cannot be
    a folder fto writes to."""
    home = Path(os.environ.get("FTO_HOME") or Path.home() / ".fto")
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # under a file, read-only, no permission
        raise _unusable(home, exc.strerror or str(exc)) from None
    if not os.access(home, os.W_OK | os.X_OK):
        raise _unusable(home, "not writable")
    return home


def _unusable(home: Path, why: str) -> Exception:
    from fto.orchestrator.errors import FtoError

    return FtoError(
        f"FTO_HOME {home} cannot hold fto's state ({why}): set FTO_HOME to a folder you can write, "
        "e.g. `export FTO_HOME=$HOME/.fto`"
    )


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
