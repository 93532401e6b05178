"""Every public function, class and method of fto says what it does (a method may inherit its interface's docs).

Also: no one-letter names for functions, arguments or module-level names (comprehension variables may be short).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import fto.backends
import fto.orchestrator
import fto.schemas

# Modules that need the local extra's torch stack at import; they are checked where it is installed (always in CI).
PACKAGES = (fto.orchestrator, fto.backends, fto.schemas)


def modules() -> list[ModuleType]:
    found = []
    for package in PACKAGES:
        found.append(package)
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if info.name.endswith(("__main__", ".worker")):  # entry scripts: their functions are checked below
                continue
            found.append(importlib.import_module(info.name))
    return found


def undocumented(module: ModuleType) -> list[str]:
    missing = []
    for name, member in vars(module).items():
        if name.startswith("_") or getattr(member, "__module__", None) != module.__name__:
            continue
        documented = inspect.getdoc(member) and not (inspect.isclass(member) and member.__doc__ is None)
        if (inspect.isfunction(member) or inspect.isclass(member)) and not documented:
            missing.append(name)
        if inspect.isclass(member):
            for attr, value in vars(member).items():
                if attr.startswith("_") or not inspect.isfunction(getattr(member, attr, None)):
                    continue
                if isinstance(value, property | staticmethod | classmethod):
                    value = getattr(member, attr)
                if not inspect.getdoc(getattr(member, attr)):
                    missing.append(f"{name}.{attr}")
    return missing


@pytest.mark.parametrize("module", modules(), ids=lambda m: m.__name__)
def test_public_names_have_docstrings(module: ModuleType):
    assert not undocumented(module), f"{module.__name__}: no docstring on {undocumented(module)}"


@pytest.mark.parametrize("module", modules(), ids=lambda m: m.__name__)
def test_no_one_letter_names(module: ModuleType):
    source = inspect.getsource(module)
    short = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if len(node.name) == 1:
                short.append(f"def {node.name} (line {node.lineno})")
            short.extend(
                f"argument {arg.arg} of {node.name} (line {node.lineno})"
                for arg in [*node.args.args, *node.args.kwonlyargs]
                if len(arg.arg) == 1 and arg.arg != "_"
            )
        elif isinstance(node, ast.Assign) and node.col_offset == 0:
            short.extend(
                f"{target.id} (line {node.lineno})"
                for target in node.targets
                if isinstance(target, ast.Name) and len(target.id) == 1 and target.id not in ("T", "P")
            )
    assert not short, f"{module.__name__}: one-letter names {short}"
