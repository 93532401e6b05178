"""Line-by-line JSONL reading that knows where it is, so every error names file and line."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from orchestrator.errors import DataError


def _open(path: Path) -> BinaryIO:
    with open(path, "rb") as probe:
        magic = probe.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def iter_objects(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, JSON object) for each non-blank line; stream, never load the whole file."""
    path = Path(path)
    shown = str(path)
    try:
        handle = _open(path)
    except OSError as exc:
        raise DataError(f"cannot read: {exc.strerror or exc}", file=shown) from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # a UTF-8 BOM is harmless; tolerate it
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"invalid UTF-8 at byte {exc.start}", file=shown, line=number) from None
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                hint = " (is this a JSON array rather than JSONL?)" if number == 1 and text.lstrip()[:1] == "[" else ""
                raise DataError(
                    f"invalid JSON: {exc.msg} at column {exc.colno}{hint}", file=shown, line=number
                ) from None
            if not isinstance(obj, dict):
                hint = " (is this a JSON array rather than JSONL?)" if isinstance(obj, list) else ""
                raise DataError(f"expected a JSON object, got {type(obj).__name__}{hint}", file=shown, line=number)
            yield number, obj
