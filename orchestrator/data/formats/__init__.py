"""Every dataset format fto reads or writes, and auto-detection from a file's first object."""

from __future__ import annotations

from typing import Any, ClassVar

from orchestrator.data.formats.alpaca import Alpaca
from orchestrator.data.formats.base import Format, RecordError, Warn
from orchestrator.data.formats.bedrock_claude import BedrockClaude
from orchestrator.data.formats.hh_rlhf import HHRLHF
from orchestrator.data.formats.llamafactory_v1 import LlamaFactoryV1
from orchestrator.data.formats.openai_chat import OpenAIChat
from orchestrator.data.formats.openai_preference import OpenAIPreference
from orchestrator.data.formats.prompt_completion import PromptCompletion
from orchestrator.data.formats.questions import Questions
from orchestrator.data.formats.sharegpt import Mapping, ShareGPT
from orchestrator.errors import DataError

# Detection order: the most specific shapes first (a Bedrock line is also an OpenAI chat line).
FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        OpenAIPreference(),
        LlamaFactoryV1(),
        BedrockClaude(),
        OpenAIChat(),
        ShareGPT(),
        Alpaca(),
        HHRLHF(),
        Questions(),
        PromptCompletion(),
    )
}

__all__ = ["FORMATS", "Format", "Mapping", "RecordError", "Warn", "detect", "get_format", "with_mapping"]


def get_format(name: str) -> Format:
    if name not in FORMATS:
        raise DataError(f"unknown format {name!r} (known: {', '.join(FORMATS)})", field="format")
    return FORMATS[name]


def detect(obj: dict[str, Any], file: str | None = None, line: int | None = None) -> Format:
    for fmt in FORMATS.values():
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
