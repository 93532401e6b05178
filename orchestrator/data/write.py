"""Write canonical records in a target format, one JSON object per line."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import orjson

from fto.orchestrator.data.formats import Format, RecordError, get_format
from fto.orchestrator.errors import DataError
from fto.schemas import Record


def write_records(
    records: Iterable[Record], path: str | Path, fmt: Format | str, skip_unwritable: bool = False
) -> tuple[int, int]:
    """Returns (written, skipped). A record the format cannot hold is an error naming its source line,
    unless `skip_unwritable`."""
    fmt = get_format(fmt) if isinstance(fmt, str) else fmt
    written = skipped = 0
    with open(path, "wb") as out:
        for record in records:
            try:
                obj = fmt.dump(record)
            except RecordError as exc:
                if skip_unwritable:
                    skipped += 1
                    continue
                raise DataError(exc.message, line=record.source_line, field=exc.field) from None
            out.write(orjson.dumps(obj) + b"\n")
            written += 1
    return written, skipped
