"""Every dataset format fto reads or writes, and auto-detection from a file's first object."""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import Any, ClassVar

from fto.orchestrator.data.formats.alpaca import Alpaca
from fto.orchestrator.data.formats.base import Format, RecordError, Warn
from fto.orchestrator.data.formats.chat import Chat, RftPrompts
from fto.orchestrator.data.formats.hh_rlhf import HHRLHF
from fto.orchestrator.data.formats.llamafactory_v1 import LlamaFactoryV1
from fto.orchestrator.data.formats.preference import Preference
from fto.orchestrator.data.formats.prompt_completion import PromptCompletion
from fto.orchestrator.data.formats.questions import Questions
from fto.orchestrator.data.formats.sharegpt import Mapping, ShareGPT
from fto.orchestrator.errors import DataError

GROUP = "fto.formats"  # backends add their providers' own formats (and old names) through this entry-point group
BUILT_IN: tuple[Format, ...] = (
    Preference(),
    LlamaFactoryV1(),
    Chat(),
    ShareGPT(),
    Alpaca(),
    HHRLHF(),
    Questions(),
    PromptCompletion(),
    RftPrompts(),
)

__all__ = ["Format", "Mapping", "RecordError", "Warn", "all_formats", "detect", "get_format", "with_mapping"]


@cache
def all_formats() -> dict[str, Format]:
    """Every readable or writable format by name (aliases included), in detection order: most specific first."""
    found: dict[str, Format] = {f.name: f for f in BUILT_IN}
    for ep in entry_points(group=GROUP):
        try:
            cls = ep.load()
        except ImportError as exc:
            raise DataError(f"format {ep.name!r} is installed but cannot be imported: {exc}") from exc
        found.setdefault(ep.name, cls())
    return dict(sorted(found.items(), key=lambda item: -item[1].priority))


def get_format(name: str) -> Format:
    """The format registered as `name` (built in, or added by an installed backend)."""
    formats = all_formats()
    if name not in formats:
        raise DataError(f"unknown format {name!r} (known: {', '.join(formats)})", field="format")
    return formats[name]


def detect(obj: dict[str, Any], file: str | None = None, line: int | None = None) -> Format:
    """The format of a file whose first object is `obj`; an unknown shape is a DataError naming file and line."""
    for fmt in all_formats().values():
        if fmt.detect(obj):
            return fmt
    if "input_ids" in obj:
        raise DataError(
            "pre-tokenized data (input_ids) is not a format fto reads; give it the text",
            file=file,
            line=line,
            code="unknown_format",
        )
    keys = ", ".join(sorted(obj)[:8])
    raise DataError(
        f"cannot tell the format from the keys ({keys}); name it with `format:` / --format, or describe the columns "
        "with a LLaMA-Factory dataset_info entry (`mapping:` / --mapping)",
        file=file,
        line=line,
        code="unknown_format",
    )


def with_mapping(entry: dict[str, Any]) -> Format:
    """A reader for custom column names, from a LLaMA-Factory dataset_info.json entry."""
    formatting = entry.get("formatting", "alpaca")
    if formatting == "sharegpt":
        try:
            return ShareGPT(Mapping.from_entry(entry))
        except ValueError as exc:
            raise DataError(str(exc), field="mapping") from None
    if formatting == "alpaca":
        return RenamedAlpaca(entry.get("columns") or {})
    raise DataError(f"unknown formatting {formatting!r} (expected alpaca or sharegpt)", field="mapping.formatting")


class RenamedAlpaca(Alpaca):
    """Alpaca under LLaMA-Factory's column names (prompt, query, response, system, history)."""

    STANDARD: ClassVar[dict[str, str]] = {
        "prompt": "instruction",
        "query": "input",
        "response": "output",
        "system": "system",
        "history": "history",
    }

    def __init__(self, columns: dict[str, str]):
        unknown = set(columns) - set(self.STANDARD)
        if unknown:
            raise DataError(f"unknown alpaca column(s): {sorted(unknown)}", field="mapping.columns")
        self.rename = {source: self.STANDARD[ours] for ours, source in columns.items()}

    def detect(self, obj: dict[str, Any]) -> bool:
        return super().detect(self._renamed(obj))

    def parse(self, obj: dict[str, Any], warn: Warn) -> Any:
        return super().parse(self._renamed(obj), warn)

    def _renamed(self, obj: dict[str, Any]) -> dict[str, Any]:
        return {self.rename.get(k, k): v for k, v in obj.items()}
