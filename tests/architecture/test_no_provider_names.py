"""The core never names a provider: everything a provider knows lives in its backend (the plugin promise).

Scanned: the code of orchestrator/ and schemas/ (identifiers, string literals and imports; comments and
docstrings may mention providers). `orchestrator/serve/` is exempt: `fto serve` implements OpenAI's wire API
(its paths, its SDK's types), so naming that API is its job, not a branch on a backend.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = [ROOT / "orchestrator", ROOT / "schemas"]
EXEMPT = [ROOT / "orchestrator" / "serve"]
# Distinctive provider names: none may appear in an identifier, and none in a string as a name (openai_chat,
# "anthropic:model", OPENAI_API_KEY, "bedrock"); prose such as "the OpenAI cookbook" in a message is allowed.
DISTINCTIVE = ("openai", "anthropic", "bedrock", "claude", "fireworks", "vertex", "gemini", "azure", "together")
# Backend names that are common words: only a string that is exactly the name (a branch on it) is caught.
COMMON_WORDS = ("local", "sim", "ray")
PROVIDER_SDKS = ("openai", "anthropic", "boto3", "botocore", "together", "fireworks", "google")
AS_NAME = re.compile(r"(?i)(?<![a-z0-9])(" + "|".join(DISTINCTIVE) + r")(?=$|[_:./'\"])")


def core_files() -> list[Path]:
    return sorted(
        path
        for folder in CORE
        for path in folder.rglob("*.py")
        if not any(path.is_relative_to(exempt) for exempt in EXEMPT)
    )


def docstring_lines(source: str) -> set[int]:
    """Line numbers of module, class and function docstrings."""
    lines: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                lines.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return lines


def provider_names_in(source: str) -> list[tuple[int, str]]:
    """(line, token) for each place the source names a provider in code."""
    found: list[tuple[int, str]] = []
    docs = docstring_lines(source)
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        line = token.start[0]
        if token.type == tokenize.NAME and any(name in token.string.lower() for name in DISTINCTIVE):
            found.append((line, token.string))
        elif token.type == tokenize.STRING and line not in docs:
            text = token.string.strip("rbfuRBFU").strip("'\"")
            if (
                AS_NAME.search(token.string)
                or text in COMMON_WORDS
                or text.endswith(tuple(f"{w}:" for w in COMMON_WORDS))
            ):
                found.append((line, token.string))
    for node in ast.walk(ast.parse(source)):
        modules = (
            [alias.name for alias in node.names] if isinstance(node, ast.Import)
            else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        )  # fmt: skip
        found.extend((node.lineno, m) for m in modules if m.split(".")[0] in PROVIDER_SDKS)
    return found


def test_the_check_catches_what_it_is_for():
    caught = provider_names_in(
        'import boto3\nif backend == "local":\n    fmt = "openai_chat"\nkey = "ANTHROPIC_API_KEY"\n'
        "def _bedrock_rules(): ...\nmodel = 'embedded:x' if t == 'sim' else 'claude:x'\n"
    )
    assert sorted(caught) == [
        (1, "boto3"), (2, '"local"'), (3, '"openai_chat"'), (4, '"ANTHROPIC_API_KEY"'), (5, "_bedrock_rules"),
        (6, "'claude:x'"), (6, "'sim'"),
    ]  # fmt: skip
    assert provider_names_in('"""Reads OpenAI\'s cookbook format."""\nmessage = "the OpenAI chat JSONL shape"\n') == []


@pytest.mark.parametrize("path", core_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_core_code_names_no_provider(path: Path):
    found = provider_names_in(path.read_text(encoding="utf-8"))
    assert not found, f"{path.relative_to(ROOT)} names providers: {found} (ask the backend through the registry)"
