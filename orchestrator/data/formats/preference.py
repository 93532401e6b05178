"""OpenAI preference (DPO) JSONL: {"input": {"messages", "tools"?}, "preferred_output", "non_preferred_output"}."""

from __future__ import annotations

from typing import Any, ClassVar

from fto.orchestrator.data.formats.base import (
    Format,
    RecordError,
    Warn,
    not_supported,
    parse_tools,
    require_list,
    tools_json,
)
from fto.orchestrator.data.formats.chat import dump_messages, parse_messages
from fto.schemas import PreferencePair, Record


class Preference(Format):
    """Preference JSONL: {"input": {"messages", "tools"?}, "preferred_output", "non_preferred_output"}."""

    name: ClassVar[str] = "preference"
    description: ClassVar[str] = "OpenAI preference JSONL (input, preferred_output, non_preferred_output)"
    kinds: ClassVar[frozenset[str]] = frozenset({"preference"})
    priority: ClassVar[int] = 90

    def detect(self, obj: dict[str, Any]) -> bool:
        return "preferred_output" in obj and "input" in obj

    def parse(self, obj: dict[str, Any], warn: Warn) -> Record:
        source = obj.get("input")
        if not isinstance(source, dict):
            raise RecordError("missing_key", "input", "expected an object with messages")
        prompt = parse_messages(require_list(source, "messages"), warn, "input.messages")
        chosen = parse_messages(require_list(obj, "preferred_output"), warn, "preferred_output")
        rejected = parse_messages(require_list(obj, "non_preferred_output"), warn, "non_preferred_output")
        return PreferencePair(prompt=prompt, chosen=chosen, rejected=rejected, tools=parse_tools(source.get("tools")))

    def dump(self, record: Record) -> dict[str, Any]:
        if not isinstance(record, PreferencePair):
            raise not_supported(self.name, "single conversations (use chat)")
        source: dict[str, Any] = {"messages": dump_messages(record.prompt)}
        if record.tools:
            source["tools"] = tools_json(record.tools)
        return {
            "input": source,
            "preferred_output": dump_messages(record.chosen),
            "non_preferred_output": dump_messages(record.rejected),
        }
