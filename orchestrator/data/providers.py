"""Provider facts that change over time (limits, prices) live in providers.json, which users can update."""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

from orchestrator.errors import DataError
from orchestrator.paths import fto_home

TARGETS = ("openai", "anthropic", "local")


@cache
def table() -> dict[str, Any]:
    data = json.loads(files("orchestrator.data").joinpath("providers.json").read_text(encoding="utf-8"))
    override = fto_home() / "providers.json"
    if override.is_file():
        try:
            user = json.loads(override.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"invalid JSON: {exc.msg}", file=str(override), line=exc.lineno) from None
        for provider, entry in user.items():
            merged = data.setdefault(provider, {})
            models = {**merged.get("models", {}), **entry.get("models", {})}
            merged.update(entry)
            merged["models"] = models
    return data


def provider(name: str) -> dict[str, Any]:
    if name not in TARGETS:
        raise DataError(f"unknown target {name!r} (expected one of {', '.join(TARGETS)})", field="--for")
    return table()[name]


def model_info(target: str, model: str | None) -> tuple[str, dict[str, Any] | None]:
    """The model (default: the provider's), and what the table knows of it (None: not in the table)."""
    entry = provider(target)
    model = model or entry["default_model"]
    return model, entry["models"].get(model)
