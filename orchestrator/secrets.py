"""Keep secrets out of output: keys come from the environment and are masked wherever text is stored."""

from __future__ import annotations

import os
import re
from collections.abc import Callable

_SECRET_NAME = re.compile(r"(api[_-]?key|secret|token|password|credential)", re.IGNORECASE)
# Shapes of provider keys, masked even when they did not come from our environment.
_KEY_SHAPES = re.compile(r"\b(sk-[A-Za-z0-9_-]{8,}|sk-ant-[A-Za-z0-9_-]{8,}|AKIA[0-9A-Z]{16})\b")


def key_shapes(text: str) -> list[str]:
    """Provider keys in `text` (by their shape), as they would be redacted."""
    return _KEY_SHAPES.findall(text)


def looks_like_secret_name(name: str) -> bool:
    """Whether a key name looks like it holds a secret (api_key, token, password, …)."""
    return bool(_SECRET_NAME.search(name))


_names: dict[frozenset[str], list[str]] = {}


def _secret_values() -> list[str]:
    """Values of secret-named environment variables, longest first (names found once per set of variables)."""
    keys = frozenset(os.environ)
    if keys not in _names:
        _names.clear()  # one entry: the environment as it is now
        _names[keys] = [k for k in keys if looks_like_secret_name(k)]
    values = (os.environ.get(name, "") for name in _names[keys])
    return sorted((v for v in values if len(v) >= 8), key=len, reverse=True)


def redact(text: str) -> str:
    """Mask every secret-looking environment value and key-shaped string in `text`."""
    return redactor()(text)


def redactor() -> Callable[[str], str]:
    """`redact` for many texts in a row: the environment's secrets are looked up once."""
    values = _secret_values()

    def masked(text: str) -> str:
        for value in values:
            if value in text:
                text = text.replace(value, "***")
        return _KEY_SHAPES.sub("***", text)

    return masked
