"""`fto.JobSpec`: a job from a YAML file, a dict, or built in Python — one validation for all three."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import PrivateAttr

from fto.orchestrator import config
from fto.schemas import JobSpec as _Schema


class JobSpec(_Schema):
    """A job file as Python: what to train on, how, where, and how to judge the result.

    `JobSpec.from_file("job.yaml")` reads a file (errors name its file, line and field, as the CLI's do);
    `JobSpec.from_dict({...})` takes a dict (relative paths from the working folder); `JobSpec(name=..., ...)`
    builds one directly. `fto.submit` chooses the backends and expands sweeps the same way for each.
    """

    _path: Path | None = PrivateAttr(default=None)
    _as_read: dict[str, Any] | None = PrivateAttr(default=None)  # to tell whether Python changed it since

    @classmethod
    def from_file(cls, path: str | Path) -> JobSpec:
        """The job file at `path`, validated (a bad one raises ConfigError naming its file, line and field)."""
        loaded = config.load_job(path, choose=False)
        spec = cls.model_validate(loaded.spec.model_dump())
        spec._path, spec._as_read = loaded.path, _unexpanded(spec)
        return spec

    @classmethod
    def from_dict(cls, data: dict[str, Any], base: str | Path | None = None) -> JobSpec:
        """A job given as a dict, with the file's checks; relative data paths are taken from `base`."""
        loaded = config.load_dict(data, base=Path(base) if base else None, choose=False)
        return cls.model_validate(_unexpanded(loaded.spec))

    @property
    def path(self) -> Path | None:
        """The file this job was read from (None when given as a dict or built in Python)."""
        return self._path

    def loaded(self, backends: list[str] | None = None) -> config.LoadedJob:
        """The job as `fto submit` takes it: `backends` chosen among its sections (default: all), sweeps expanded."""
        choice = ",".join(backends) if backends else None
        if self._path is not None and _unexpanded(self) == self._as_read:
            return config.load_job(self._path, choice)  # as the CLI reads it: the same errors, with their lines
        return config.load_dict(_unexpanded(self), choice)  # changed in Python: checked as given


def _unexpanded(spec: _Schema) -> dict[str, Any]:
    """The spec as a dict that loads again to itself (a sweep stays a sweep section)."""
    return spec.model_dump(mode="json", exclude={"points"})
