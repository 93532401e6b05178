"""Objects out of a dataset file, each with its line: JSONL, a JSON array, or one JSON object; gzip or not.

Streams JSONL in constant memory. Problems are yielded, not raised, so a validator can go on past them.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import select
import shutil
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from fto.orchestrator.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"
BOM = b"\xef\xbb\xbf"
# No training example comes near this; a longer line is an error at its number, read past in chunks (memory stays
# flat however long it is). FTO_MAX_LINE_MB changes it.
MAX_LINE_BYTES = int(float(os.environ.get("FTO_MAX_LINE_MB", "16")) * 2**20)
MAX_WHOLE_BYTES = 512 * 2**20  # a JSON array or one pretty-printed object is read whole: up to this size
PIPE_WAIT_SECONDS = float(os.environ.get("FTO_PIPE_WAIT_SECONDS", "10"))


@dataclass(frozen=True, slots=True)
class Item:
    """One object of the file, or why there is none at this line."""

    line: int
    obj: dict[str, Any] | None
    error: str | None = None
    code: str | None = None
    warning: bool = False  # harmless for fto (a BOM, a blank line), but worth telling: some providers refuse it


def kind_of(path: Path) -> str | None:
    """What a path that is not a regular file is ("a folder", "a pipe (FIFO)", "a device", …), or None for a
    regular file; a DataError when it cannot be looked at (missing, a symlink loop, no permission)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise DataError("file not found", file=str(path)) from None
    except OSError as exc:  # ELOOP: a symlink loop; EACCES
        raise DataError(f"cannot read: {exc.strerror or exc}", file=str(path)) from None
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a socket" if stat.S_ISSOCK(mode) else "not a regular file"


def check_readable(path: Path) -> Path:
    """`path` made absolute, when it is a regular file fto can read; a DataError that says what it is otherwise."""
    kind = kind_of(path)
    if kind is not None:
        raise DataError(f"is {kind}, not a regular file", file=str(path))
    if not os.access(path, os.R_OK):
        raise DataError("cannot read: permission denied", file=str(path))
    return path.resolve()


@contextlib.contextmanager
def data_input(path: str | Path) -> Iterator[Path]:
    """A regular file to read `path` from as often as needed: `path` itself, or, for a pipe (`cat f | fto data
    validate /dev/stdin`, `<(…)`), a temporary copy read from it once. A pipe that sends nothing within
    FTO_PIPE_WAIT_SECONDS (a FIFO with no writer) and a device (/dev/zero) are refused with a clear error."""
    path = Path(path)
    kind = kind_of(path)
    if kind is None:
        yield path
        return
    if kind != "a pipe (FIFO)":
        raise DataError(f"is {kind}, not a data file", file=str(path))
    folder = Path(tempfile.mkdtemp(prefix="fto-pipe-"))
    try:
        copy = folder / (path.name or "stdin")
        _copy_pipe(path, copy)
        yield copy
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _copy_pipe(path: Path, copy: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # opening a FIFO with no writer would block forever
    try:
        ready, _, _ = select.select([fd], [], [], PIPE_WAIT_SECONDS)
        if not ready:
            raise DataError(
                f"nothing arrived from the pipe within {PIPE_WAIT_SECONDS:g} s (is anything writing to it? "
                "FTO_PIPE_WAIT_SECONDS waits longer)",
                file=str(path),
            )
        os.set_blocking(fd, True)
        with open(fd, "rb", closefd=False) as source, open(copy, "wb") as target:
            shutil.copyfileobj(source, target, 4 * 2**20)
    finally:
        os.close(fd)


def open_binary(path: Path) -> IO[bytes]:
    """The file opened for reading bytes, decompressed on the fly when it is gzip."""
    try:
        with open(path, "rb") as probe:
            magic = probe.read(2)
        if magic == GZIP_MAGIC:
            return gzip.GzipFile(path, "rb")  # type: ignore[return-value]  # GzipFile is a binary IO
        return open(path, "rb")
    except IsADirectoryError:
        raise DataError("is a folder, not a file", file=str(path)) from None
    except FileNotFoundError:
        raise DataError("file not found", file=str(path)) from None
    except OSError as exc:
        raise DataError(f"cannot read: {exc.strerror or exc}", file=str(path)) from None


def _sniff(handle: IO[bytes]) -> tuple[bytes, bool]:
    """The first non-space byte, and whether the start of the file looks binary (NUL bytes never occur in JSON)."""
    head = handle.read(4096)
    if head.startswith(BOM):
        head = head[3:]
    return head.lstrip()[:1], b"\x00" in head


@dataclass(frozen=True, slots=True)
class Span:
    """A part of a JSONL file, cut at line starts: bytes [start, end), and the number of its first line."""

    start: int
    end: int
    first_line: int


def split_lines(path: str | Path, parts: int) -> list[Span] | None:
    """`path` cut into up to `parts` spans of about equal size at line starts, to be read on as many cores; None
    when it is not plain JSONL (gzip, a JSON array, binary, or a first line that is not one object)."""
    path = Path(path)
    with open(path, "rb") as handle:
        head = handle.readline(MAX_LINE_BYTES + 1)
        if head.startswith(GZIP_MAGIC) or b"\x00" in head or not head.endswith(b"\n"):
            return None
        try:  # a JSON object on the first line: JSONL, not an array or one pretty-printed object
            if not isinstance(orjson.loads(head[3:] if head.startswith(BOM) else head), dict):
                return None
        except orjson.JSONDecodeError:
            return None
        size = path.stat().st_size
        starts = [0]
        for k in range(1, parts):
            handle.seek(max(size * k // parts, starts[-1]))
            while (chunk := handle.readline(4 * 2**20)) and not chunk.endswith(b"\n"):
                pass  # on to the next line's start, a long line read past in chunks
            if handle.tell() < size:
                starts.append(handle.tell())
        spans, line = [], 1
        for start, end in zip(starts, [*starts[1:], size], strict=True):
            spans.append(Span(start, end, line))
            line += _newlines(handle, start, end)
    return spans


def _newlines(handle: IO[bytes], start: int, end: int) -> int:
    handle.seek(start)
    count, left = 0, end - start
    while left > 0:
        chunk = handle.read(min(left, 4 * 2**20))
        if not chunk:
            break
        count += chunk.count(b"\n")
        left -= len(chunk)
    return count


def iter_items(path: str | Path, span: Span | None = None) -> Iterator[Item]:
    """Yield an Item per record: JSONL line by line, or the elements of a top-level JSON array; with `span`, the
    lines of that part of a JSONL file (see `split_lines`)."""
    path = Path(path)
    if span is not None:
        yield from _jsonl_items(path, span)
        return
    with open_binary(path) as handle:
        try:
            first, binary = _sniff(handle)
        except (OSError, EOFError) as exc:  # a corrupt gzip stream
            yield Item(1, None, f"cannot read: {exc}", "unreadable")
            return
    if binary:
        yield Item(1, None, "binary data, not text (is this the right file?)", "binary")
        return
    if first == b"[":
        yield from _array_items(path)
    else:
        yield from _jsonl_items(path)


def _jsonl_items(path: Path, span: Span | None = None) -> Iterator[Item]:
    with open_binary(path) as handle:
        if span is not None:
            handle.seek(span.start)
        left = span.end - span.start if span is not None else -1  # bytes of the span not yet read
        try:
            for number, raw in enumerate(_bounded_lines(handle), start=span.first_line if span else 1):
                if span is not None:
                    if left <= 0:
                        break
                    left -= len(raw) if isinstance(raw, bytes) else raw
                if isinstance(raw, int):
                    yield Item(number, None, f"line longer than {MAX_LINE_BYTES // 2**20} MB (the limit; "
                               "FTO_MAX_LINE_MB changes it)", "line_too_long")  # fmt: skip
                    continue
                if number == 1 and raw.startswith(BOM):
                    raw = raw[3:]
                    yield Item(1, None, "the file starts with a UTF-8 byte-order mark", "bom", warning=True)
                if not raw.strip():
                    yield Item(number, None, "blank line", "blank_line", warning=True)
                    continue
                try:
                    obj = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    if number == 1 and raw.lstrip()[:1] == b"{":
                        whole = _single_object(path)
                        if whole is not None:  # one pretty-printed object, not JSONL
                            yield Item(1, whole)
                            return
                    yield _explain(raw, number)
                    continue
                if isinstance(obj, dict):
                    yield Item(number, obj)
                else:
                    hint = " (is this a JSON array rather than JSONL?)" if isinstance(obj, list) else ""
                    yield Item(number, None, f"expected a JSON object, got {_kind(obj)}{hint}", "not_an_object")
        except (OSError, EOFError) as exc:
            yield Item(0, None, f"cannot read: {exc}", "unreadable")


def _bounded_lines(handle: IO[bytes]) -> Iterator[bytes | int]:
    """The lines of `handle`; for one longer than MAX_LINE_BYTES, its size alone (read past in chunks, never
    held whole)."""
    while True:
        raw = handle.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        if len(raw) <= MAX_LINE_BYTES or raw.endswith(b"\n"):
            yield raw
            continue
        size = len(raw)
        while not raw.endswith(b"\n"):
            raw = handle.readline(4 * 2**20)
            if not raw:
                break
            size += len(raw)
        yield size


def _explain(raw: bytes, number: int) -> Item:
    """The slow path for a bad line: say precisely what is wrong with it."""
    if b"\x00" in raw:
        return Item(number, None, "binary data (NUL bytes), not text", "binary")
    try:
        text = raw.decode("utf-8").rstrip("\r\n")  # a column past the newline would name the next line's start
    except UnicodeDecodeError as exc:
        return Item(number, None, f"invalid UTF-8 at byte {exc.start}", "invalid_utf8")
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        # an unterminated string is reported where it starts, but the line was cut where it ends
        if exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string"):
            end = len(text.rstrip()) + 1
            return Item(
                number, None, f"invalid JSON: {exc.msg}, line ends at column {end} (truncated line?)", "invalid_json"
            )
        return Item(number, None, f"invalid JSON: {exc.msg} at column {exc.colno}", "invalid_json")
    except RecursionError:
        return Item(number, None, "invalid JSON: nested too deeply", "invalid_json")
    except ValueError:  # an integer longer than Python converts
        return Item(number, None, "invalid JSON: a number with thousands of digits", "invalid_json")
    # orjson is stricter: NaN or Infinity, lone surrogates, nesting past 1,024 levels, integers past 64 bits
    return Item(
        number, None, "invalid JSON: NaN, a lone surrogate, too deep nesting or too large a number", "invalid_json"
    )


def _single_object(path: Path) -> dict[str, Any] | None:
    with open_binary(path) as handle:
        data = handle.read(MAX_WHOLE_BYTES + 1)
    if len(data) > MAX_WHOLE_BYTES:
        return None
    try:
        obj = orjson.loads(data[3:] if data.startswith(BOM) else data)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def _array_items(path: Path) -> Iterator[Item]:
    """Elements of a top-level JSON array with their line numbers (the array is read whole)."""
    with open_binary(path) as handle:
        data = handle.read(MAX_WHOLE_BYTES + 1)
    if len(data) > MAX_WHOLE_BYTES:
        yield Item(1, None, f"a JSON array over {MAX_WHOLE_BYTES // 2**20} MB: convert it to JSONL (one object a "
                   "line), which is read in constant memory", "too_large")  # fmt: skip
        return
    if data.startswith(BOM):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        yield Item(data.count(b"\n", 0, exc.start) + 1, None, f"invalid UTF-8 at byte {exc.start}", "invalid_utf8")
        return
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    line, counted = 1, 0
    while True:
        pos = _skip_space(text, pos)
        if pos < len(text) and text[pos] == "]":
            if text[pos + 1 :].strip():
                yield Item(_line_at(text, pos + 1), None, "unexpected data after the JSON array", "invalid_json")
            return
        line += text.count("\n", counted, pos)
        counted = pos
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            yield Item(exc.lineno, None, f"invalid JSON: {exc.msg} at column {exc.colno}", "invalid_json")
            return
        if isinstance(obj, dict):
            yield Item(line, obj)
        else:
            yield Item(line, None, f"expected a JSON object, got {_kind(obj)}", "not_an_object")
        pos = _skip_space(text, pos)
        if pos < len(text) and text[pos] == ",":
            pos += 1
        elif pos >= len(text) or text[pos] != "]":
            yield Item(_line_at(text, pos), None, "invalid JSON: expected ',' or ']' (truncated file?)", "invalid_json")
            return


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _line_at(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _kind(obj: Any) -> str:
    return {list: "an array", str: "a string", type(None): "null", bool: "a boolean"}.get(
        type(obj), "a number" if isinstance(obj, int | float) else type(obj).__name__
    )
