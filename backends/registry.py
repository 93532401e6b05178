"""Find backends through the `fto.backends` entry-point group, so other packages can add their own."""

from __future__ import annotations

import difflib
import importlib.util
import re
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pydantic import ValidationError

from fto.backends.base import Backend
from fto.orchestrator.errors import ConfigError, FtoError
from fto.schemas import BackendSection

GROUP = "fto.backends"


@cache
def available() -> dict[str, EntryPoint]:
    """Registered backend names → entry points; nothing is imported yet."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def backend_class(name: str, field: str = "backend") -> type[Backend[Any]]:
    """The installed backend class registered as `name`; `field` is what an unknown name is reported against."""
    eps = available()
    if name not in eps:
        known = ", ".join(sorted(eps)) or "none"
        close = difflib.get_close_matches(name, list(eps), n=1, cutoff=0.75)  # a typo, not any name
        hint = f" — did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown backend {name!r}{hint} (available: {known})", field=field)
    try:
        cls = eps[name].load()
    except ImportError as exc:
        extra = _extra_providing(eps[name], exc.name or "")
        if extra:
            raise FtoError(
                f"backend {name!r} needs the {extra!r} extra ({exc.name} is missing): pip install 'fto[{extra}]'"
            ) from None
        raise FtoError(f"backend {name!r} is installed but cannot be imported: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise FtoError(f"entry point {eps[name].value!r} for backend {name!r} is not a Backend subclass")
    return cls


def create(name: str, section: BackendSection | None) -> Backend[Any]:
    """A backend configured from its section of a (validated) job file; `name` is the section's name."""
    cls = backend_class(section.type if section and section.type else name)
    data = section.backend_options() if section else {}
    try:
        options = cls.Options.model_validate(data)
    except ValidationError as exc:  # config.py validates with line numbers first; this is a safety net
        raise ConfigError(str(exc), field=f"backends.{name}") from exc
    return cls(name, options)


def backends_offering_rft() -> list[str]:
    """The installed backends whose provider offers reinforcement fine-tuning (their provider.json says)."""
    found = []
    for name in sorted(available()):
        try:
            cls = backend_class(name)
        except FtoError:
            continue
        info = cls.describe()
        if name != info.name and info.name in available():
            continue  # an old name of a backend listed under its own (anthropic, for bedrock)
        if "rft" in cls.methods and info.rft is not None:
            found.append(name)
    return found


def missing_requirement(cls: type[Backend[Any]]) -> str | None:
    """What a backend class lacks to run ("needs X: pip install 'fto[extra]'"), or None when its SDK is there."""
    for module in cls.requires:
        if _importable(module):
            continue
        own = f"{cls.__module__}:{cls.__qualname__}"
        eps = sorted(available().values(), key=lambda ep: ep.value != own)  # its own entry point first
        extra = _extra_providing(eps[0], module) if eps else None
        install = f"pip install 'fto[{extra}]'" if extra else f"install {module.split('.')[0]}"
        return f"needs {module}, which is not installed: {install}"
    return None


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its parent package is missing
        return False


def _extra_providing(ep: EntryPoint, missing: str) -> str | None:
    """The extra of the backend's distribution that installs the missing module, if one does."""
    if ep.dist is None or not missing:
        return None
    wanted = missing.split(".")[0].replace("_", "-").lower()
    extras = []
    for requirement in ep.dist.requires or []:
        name, _, marker = requirement.partition(";")
        package = re.split(r"[\[<>=!~ ]", name.strip(), maxsplit=1)[0].replace("_", "-").lower()
        found = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
        if found and (package == wanted or package.startswith(wanted + "-")):
            extras.append(found.group(1))
    return ep.name if ep.name in extras else (extras[0] if extras else None)  # the backend's own extra first
