"""Bedrock's training JSONL for Claude ({"system"?, "messages"}) and for Amazon Nova (bedrock-conversation-2024).
Meta Llama's prompt/completion lines are fto's own `prompt_completion` format."""

from __future__ import annotations

from typing import Any, ClassVar

from fto.orchestrator.data.formats.base import (
    Format,
    RecordError,
    Warn,
    build_message,
    not_supported,
    require_list,
    system_and_pairs,
)
from fto.schemas import Conversation, Message, Record

NOVA_SCHEMA = "bedrock-conversation-2024"


class BedrockClaude(Format):
    """Bedrock's Claude training lines: an optional system prompt and alternating user/assistant text turns."""

    name: ClassVar[str] = "bedrock_claude"
    description: ClassVar[str] = "Amazon Bedrock Claude fine-tuning JSONL (system + alternating messages)"
    kinds: ClassVar[frozenset[str]] = frozenset({"sft"})
    priority: ClassVar[int] = 60  # a Bedrock line is also a chat line

    def detect(self, obj: dict[str, Any]) -> bool:
        return (
            isinstance(obj.get("system"), str)
            and isinstance(obj.get("messages"), list)
            and set(obj) <= {"system", "messages"}
        )

    def parse(self, obj: dict[str, Any], warn: Warn) -> Record:
        messages: list[Message] = []
        if "system" in obj:
            if not isinstance(obj["system"], str):
                raise RecordError("invalid_field", "system", "expected a string")
            messages.append(Message(role="system", content=obj["system"]))
        for i, m in enumerate(require_list(obj, "messages")):
            if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
                raise RecordError("unrecognized_role", f"messages[{i}].role", "Bedrock messages are user or assistant")
            messages.append(build_message({"role": m["role"], "content": m.get("content")}, f"messages[{i}]"))
        return Conversation(messages=messages)

    def dump(self, record: Record) -> dict[str, Any]:
        if not isinstance(record, Conversation):
            raise not_supported(self.name, "preference pairs (Bedrock fine-tunes Claude with SFT only)")
        system, messages = system_and_pairs(record, self.name)
        out: dict[str, Any] = {} if system is None else {"system": system}
        out["messages"] = [{"role": m.role, "content": m.content or ""} for m in messages]
        return out


class BedrockNova(Format):
    """Amazon Nova's training lines (bedrock-conversation-2024): system text blocks, user/assistant turns whose
    content is a list of text blocks."""

    name: ClassVar[str] = "bedrock_nova"
    description: ClassVar[str] = "Amazon Bedrock Nova fine-tuning JSONL (bedrock-conversation-2024)"
    kinds: ClassVar[frozenset[str]] = frozenset({"sft"})
    priority: ClassVar[int] = 70

    def detect(self, obj: dict[str, Any]) -> bool:
        return obj.get("schemaVersion") == NOVA_SCHEMA

    def parse(self, obj: dict[str, Any], warn: Warn) -> Record:
        messages: list[Message] = []
        system = obj.get("system") or []
        if not isinstance(system, list) or not all(isinstance(b, dict) and isinstance(b.get("text"), str)
                                                   for b in system):  # fmt: skip
            raise RecordError("invalid_field", "system", "expected a list of {text} blocks")
        if system:
            messages.append(Message(role="system", content="\n".join(b["text"] for b in system)))
        for i, m in enumerate(require_list(obj, "messages")):
            if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
                raise RecordError("unrecognized_role", f"messages[{i}].role", "Nova messages are user or assistant")
            blocks = m.get("content")
            if not isinstance(blocks, list) or not all(isinstance(b, dict) and "text" in b for b in blocks):
                raise RecordError("invalid_field", f"messages[{i}].content", "expected a list of {text} blocks")
            messages.append(Message(role=m["role"], content="".join(str(b["text"]) for b in blocks)))
        return Conversation(messages=messages)

    def dump(self, record: Record) -> dict[str, Any]:
        if not isinstance(record, Conversation):
            raise not_supported(self.name, "preference pairs (Bedrock fine-tunes Nova with SFT)")
        system, messages = system_and_pairs(record, self.name)
        out: dict[str, Any] = {"schemaVersion": NOVA_SCHEMA}
        if system is not None:
            out["system"] = [{"text": system}]
        out["messages"] = [{"role": m.role, "content": [{"text": m.content or ""}]} for m in messages]
        return out
