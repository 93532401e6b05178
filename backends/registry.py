"""Find backends through the `fto.backends` entry-point group, so other packages can add their own."""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points

from pydantic import ValidationError

from backends.base import Backend
from orchestrator.errors import ConfigError, FtoError
from schemas import BackendSection

GROUP = "fto.backends"


@cache
def available() -> dict[str, EntryPoint]:
    """Registered backend names → entry points; nothing is imported yet."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def backend_class(name: str) -> type[Backend]:
    eps = available()
    if name not in eps:
        known = ", ".join(sorted(eps)) or "none"
        raise ConfigError(f"unknown backend {name!r} (available: {known})", field="backend")
    try:
        cls = eps[name].load()
    except ImportError as exc:
        raise FtoError(f"backend {name!r} is installed but cannot be imported: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise FtoError(f"entry point {eps[name].value!r} for backend {name!r} is not a Backend subclass")
    return cls


def create(name: str, section: BackendSection | None) -> Backend:
    """A backend configured from its section of a (validated) job file; `name` is the section's name."""
    cls = backend_class(section.type if section and section.type else name)
    data = section.backend_options() if section else {}
    try:
        options = cls.Options.model_validate(data)
    except ValidationError as exc:  # config.py validates with line numbers first; this is a safety net
        raise ConfigError(str(exc), field=f"backends.{name}") from exc
    return cls(name, options)
