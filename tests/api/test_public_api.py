"""The names `fto` exports are its public API: each one documented, fully typed, and named in docs/python.md."""

from __future__ import annotations

import inspect
import subprocess
import sys
import typing

import pytest

import fto
from tests.conftest import REPO


def _members() -> list[tuple[str, object]]:
    found = []
    for name in fto.__all__:
        value = getattr(fto, name)
        found.append((name, value))
        if inspect.isclass(value):
            for attr, member in vars(value).items():
                if (not attr.startswith("_") and not attr.startswith("model_")) or attr in ("__init__", "_repr_html_"):
                    found.append((f"{name}.{attr}", member))
        elif inspect.ismodule(value):
            found += [(f"{name}.{n}", getattr(value, n)) for n in value.__all__]
    return found


@pytest.mark.parametrize(("name", "value"), _members(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_exported_name_has_a_docstring_and_type_hints(name, value):
    target = value.fget if isinstance(value, property) else value
    if isinstance(target, classmethod | staticmethod):
        target = target.__func__
    if not (inspect.isfunction(target) or inspect.isclass(target) or inspect.ismodule(target)):
        return  # a constant or a field
    if not name.endswith(("__init__", "_repr_html_")):
        assert inspect.getdoc(target), f"fto.{name} has no docstring"
    if inspect.isfunction(target):
        public = {n: getattr(fto, n) for n in fto.__all__}  # names the API imports only when used
        hints = typing.get_type_hints(target, localns=public)
        parameters = [p for p in inspect.signature(target).parameters if p not in ("self", "cls")]
        missing = [p for p in parameters if p not in hints]
        assert not missing and "return" in hints, f"fto.{name}: no type hint for {missing or 'its return'}"


def test_nothing_internal_is_exported_and_docs_name_every_export():
    assert set(dir(fto)) == set(fto.__all__)
    with pytest.raises(AttributeError):
        fto.Store  # noqa: B018  (internal: not part of the API)
    docs = (REPO / "docs" / "python.md").read_text()
    assert [n for n in fto.__all__ if f"`{n}" not in docs and f"fto.{n}" not in docs] == []


def test_import_fto_is_light():
    """`import fto` loads nothing until a name is used (the CLI imports it on every call)."""
    code = "import sys, fto; print(sorted(m for m in ('pydantic', 'torch', 'jinja2', 'httpx') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert loaded.stdout.strip() == "[]"
