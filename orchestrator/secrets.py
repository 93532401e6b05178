"""Keep secrets out of output: keys come from the environment and are masked wherever text is stored."""

from __future__ import annotations

import os
import re

_SECRET_NAME = re.compile(r"(api[_-]?key|secret|token|password|credential)", re.IGNORECASE)
# Shapes of provider keys, masked even when they did not come from our environment.
_KEY_SHAPES = re.compile(r"\b(sk-[A-Za-z0-9_-]{8,}|sk-ant-[A-Za-z0-9_-]{8,}|AKIA[0-9A-Z]{16})\b")


def looks_like_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


_cache: tuple[frozenset[tuple[str, str]], list[str]] = (frozenset(), [])


def _secret_values() -> list[str]:
    """Values of secret-named environment variables (recomputed only when the environment changes)."""
    global _cache
    items = frozenset(os.environ.items())
    if items != _cache[0]:
        values = [v for k, v in items if len(v) >= 8 and looks_like_secret_name(k)]
        _cache = (items, sorted(values, key=len, reverse=True))
    return _cache[1]


def redact(text: str) -> str:
    """Mask every secret-looking environment value and key-shaped string in `text`."""
    for value in _secret_values():
        if value in text:
            text = text.replace(value, "***")
    return _KEY_SHAPES.sub("***", text)
