"""Keep secrets out of output: keys come from the environment and are masked wherever text is stored."""

from __future__ import annotations

import os
import re

_SECRET_NAME = re.compile(r"(api[_-]?key|secret|token|password|credential)", re.IGNORECASE)
# Shapes of provider keys, masked even when they did not come from our environment.
_KEY_SHAPES = re.compile(r"\b(sk-[A-Za-z0-9_-]{8,}|sk-ant-[A-Za-z0-9_-]{8,}|AKIA[0-9A-Z]{16})\b")


def looks_like_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


def redact(text: str) -> str:
    """Mask every secret-looking environment value and key-shaped string in `text`."""
    for name, value in os.environ.items():
        if len(value) >= 8 and looks_like_secret_name(name) and value in text:
            text = text.replace(value, "***")
    return _KEY_SHAPES.sub("***", text)
