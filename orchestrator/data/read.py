"""Read a dataset file into canonical records: the format named or detected, every problem with its line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fto.orchestrator.data.formats import Format, RecordError, detect, get_format, with_mapping
from fto.orchestrator.data.source import iter_items
from fto.orchestrator.errors import DataError
from fto.schemas import Record


def load_mapping(spec: str) -> dict[str, Any]:
    """`FILE` holding one dataset_info entry, or `FILE:NAME` for an entry of a LLaMA-Factory dataset_info.json."""
    path, _, name = spec.partition(":") if not Path(spec).exists() else (spec, "", "")
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read the mapping: {exc}", file=path) from None
    if name:
        if name not in data:
            raise DataError(f"no entry {name!r} in the dataset_info file", file=path)
        data = data[name]
    if not isinstance(data, dict):
        raise DataError("a mapping is one dataset_info entry (an object)", file=path)
    return data


def resolve_format(path: str | Path, fmt: str = "auto", mapping: dict[str, Any] | None = None) -> Format:
    """The reader for `path`: the named format, a mapping's, or the one detected from its first object."""
    if mapping is not None:
        return with_mapping(mapping)
    if fmt != "auto":
        return get_format(fmt)
    for item in iter_items(path):
        if item.obj is not None:
            return detect(item.obj, str(path), item.line)
        if item.warning:
            continue
        raise DataError(item.error or "unreadable", file=str(path), line=item.line, code=item.code)
    raise DataError("no examples in file (it is empty)", file=str(path), code="empty_file")


def read_records(path: str | Path, fmt: str = "auto", mapping: dict[str, Any] | None = None) -> Iterator[Record]:
    """Records in file order; the first problem raises a DataError naming file, line and field."""
    shown = str(path)
    reader = resolve_format(path, fmt, mapping)

    def ignore(code: str, field: str, message: str) -> None:
        pass  # warnings are for `fto data validate`; reading for training keeps going

    for item in iter_items(path):
        if item.warning:
            continue
        if item.obj is None:
            raise DataError(item.error or "unreadable", file=shown, line=item.line)
        try:
            record = reader.parse(item.obj, ignore)
        except RecordError as exc:
            raise DataError(exc.message, file=shown, line=item.line, field=exc.field) from None
        record.source_line = item.line
        yield record
