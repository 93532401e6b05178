"""ShareGPT: {"conversations": [{"from": "human"|"gpt"|"system"|"function_call"|"observation", "value"}], "tools"?}.

With "chosen"/"rejected" turns it is a preference pair (LLaMA-Factory's ranking data); with a KTO tag, a labelled
example. Column and tag names follow a LLaMA-Factory `dataset_info.json` entry when one is given.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

from fto.orchestrator.data.formats.base import (
    Format,
    RecordError,
    Warn,
    build_message,
    not_supported,
    parse_tools,
    require_list,
    tool_call_from_json,
    tool_call_to_json,
)
from fto.schemas import Conversation, Message, PreferencePair, Record, Tool


@dataclass(frozen=True)
class Mapping:
    """LLaMA-Factory's column and tag names (its defaults for the sharegpt formatting)."""

    messages: str = "conversations"
    system: str = "system"
    tools: str = "tools"
    chosen: str = "chosen"
    rejected: str = "rejected"
    kto_tag: str = "label"
    role_tag: str = "from"
    content_tag: str = "value"
    user_tag: str = "human"
    assistant_tag: str = "gpt"
    observation_tag: str = "observation"
    function_tag: str = "function_call"
    system_tag: str = "system"

    @classmethod
    def from_entry(cls, entry: dict[str, Any]) -> Mapping:
        names = {f.name for f in fields(cls)}
        given = {**(entry.get("columns") or {}), **(entry.get("tags") or {})}
        unknown = set(given) - names - {"images", "videos", "audios"}
        if unknown:
            raise ValueError(f"unknown column or tag name(s): {sorted(unknown)}")
        return cls(**{k: v for k, v in given.items() if k in names})


class ShareGPT(Format):
    """ShareGPT conversations, under LLaMA-Factory's (or a custom) mapping of keys and role tags."""

    name: ClassVar[str] = "sharegpt"
    description: ClassVar[str] = "ShareGPT conversations (human/gpt/system/function_call/observation, tools; ranking)"
    kinds: ClassVar[frozenset[str]] = frozenset({"sft", "preference"})
    priority: ClassVar[int] = 40

    def __init__(self, mapping: Mapping | None = None):
        self.m = mapping or Mapping()
        self.roles = {
            self.m.user_tag: "user",
            self.m.assistant_tag: "assistant",
            self.m.system_tag: "system",
            self.m.function_tag: "function_call",
            self.m.observation_tag: "tool",
        }

    def detect(self, obj: dict[str, Any]) -> bool:
        return isinstance(obj.get(self.m.messages), list)

    def parse(self, obj: dict[str, Any], warn: Warn) -> Record:
        turns = require_list(obj, self.m.messages)
        messages = [self._message(t, f"{self.m.messages}[{i}]") for i, t in enumerate(turns)]
        if obj.get(self.m.system):
            if not isinstance(obj[self.m.system], str):
                raise RecordError("invalid_field", self.m.system, "expected a string")
            messages.insert(0, Message(role="system", content=obj[self.m.system]))
        tools = parse_tools(obj.get(self.m.tools), self.m.tools)
        if self.m.chosen in obj or self.m.rejected in obj:
            chosen = self._message(obj.get(self.m.chosen), self.m.chosen)
            rejected = self._message(obj.get(self.m.rejected), self.m.rejected)
            return PreferencePair(prompt=messages, chosen=[chosen], rejected=[rejected], tools=tools)
        label = obj.get(self.m.kto_tag)
        if label is not None and not isinstance(label, bool):
            raise RecordError("invalid_field", self.m.kto_tag, "a KTO label must be true or false")
        return Conversation(messages=messages, tools=tools, label=label, metadata=_extra(obj, self.m))

    def _message(self, turn: Any, field: str) -> Message:
        if not isinstance(turn, dict):
            raise RecordError("data_type", field, "expected a turn object")
        tag = turn.get(self.m.role_tag)
        if tag not in self.roles:
            raise RecordError(
                "unrecognized_role",
                f"{field}.{self.m.role_tag}",
                f"unknown role {tag!r} (expected one of {sorted(self.roles)})",
            )
        content = turn.get(self.m.content_tag)
        if not isinstance(content, str):
            raise RecordError("missing_content", f"{field}.{self.m.content_tag}", "expected a string")
        if self.roles[tag] == "function_call":
            return Message(role="assistant", tool_calls=[tool_call_from_json(content, f"{field}.{self.m.content_tag}")])
        return build_message({"role": self.roles[tag], "content": content}, field)

    def dump(self, record: Record) -> dict[str, Any]:
        if isinstance(record, PreferencePair):
            if len(record.chosen) != 1 or len(record.rejected) != 1:
                raise not_supported(self.name, "multi-turn preferred outputs")
            out: dict[str, Any] = {self.m.messages: [self._turn(m) for m in record.prompt]}
            out.update({self.m.chosen: self._turn(record.chosen[0]), self.m.rejected: self._turn(record.rejected[0])})
            return _with_tools(out, record.tools, self.m)
        out = {**(record.metadata or {}), self.m.messages: [t for m in record.messages for t in self._turns(m)]}
        if record.label is not None:
            out[self.m.kto_tag] = record.label
        return _with_tools(out, record.tools, self.m)

    def _turns(self, message: Message) -> list[dict[str, str]]:
        if message.tool_calls:
            if message.content:
                raise not_supported(self.name, "an assistant turn with both text and tool calls")
            return [
                {self.m.role_tag: self.m.function_tag, self.m.content_tag: tool_call_to_json(c)}
                for c in message.tool_calls
            ]
        return [self._turn(message)]

    def _turn(self, message: Message) -> dict[str, str]:
        tag = {
            "user": self.m.user_tag,
            "assistant": self.m.assistant_tag,
            "system": self.m.system_tag,
            "tool": self.m.observation_tag,
        }[message.role]
        return {self.m.role_tag: tag, self.m.content_tag: message.content or ""}


def _extra(obj: dict[str, Any], mapping: Mapping) -> dict[str, Any] | None:
    """Keys such as FastChat's `id` ride along, so a ShareGPT file round-trips."""
    known = {mapping.messages, mapping.system, mapping.tools, mapping.chosen, mapping.rejected, mapping.kto_tag}
    extra = {k: v for k, v in obj.items() if k not in known}
    if obj.get(mapping.tools) in ("[]", "", []):  # an empty tools column, kept as it was written
        extra[mapping.tools] = obj[mapping.tools]
    return extra or None


def _with_tools(out: dict[str, Any], tools: list[Tool] | None, mapping: Mapping) -> dict[str, Any]:
    if tools:
        import json

        out[mapping.tools] = json.dumps([t.model_dump(exclude_none=True) for t in tools], ensure_ascii=False)
    return out
