"""Alpaca: {"instruction", "input", "output", "system"?, "history"?: [[user, assistant], …]}."""

from __future__ import annotations

from typing import Any, ClassVar

from fto.orchestrator.data.formats.base import Format, RecordError, Warn, not_supported, require_str, system_and_pairs
from fto.schemas import Conversation, Message, Record


class Alpaca(Format):
    """Alpaca rows: instruction (+ input) → output, with an optional system prompt and earlier turns."""

    name: ClassVar[str] = "alpaca"
    description: ClassVar[str] = "Alpaca (instruction, input, output; optional system and history)"
    kinds: ClassVar[frozenset[str]] = frozenset({"sft"})
    priority: ClassVar[int] = 30

    def detect(self, obj: dict[str, Any]) -> bool:
        return "instruction" in obj and "output" in obj

    def parse(self, obj: dict[str, Any], warn: Warn) -> Record:
        instruction = require_str(obj, "instruction")
        extra = obj.get("input") or ""
        if not isinstance(extra, str):
            raise RecordError("invalid_field", "input", "expected a string")
        output = require_str(obj, "output")
        messages: list[Message] = []
        if obj.get("system"):
            messages.append(Message(role="system", content=require_str(obj, "system")))
        history = obj.get("history") or []
        if not isinstance(history, list):
            raise RecordError("invalid_field", "history", "expected a list of [user, assistant] pairs")
        for i, turn in enumerate(history):
            if not (isinstance(turn, list) and len(turn) == 2 and all(isinstance(t, str) for t in turn)):
                raise RecordError("invalid_field", f"history[{i}]", "expected a [user, assistant] pair of strings")
            messages += [Message(role="user", content=turn[0]), Message(role="assistant", content=turn[1])]
        # LLaMA-Factory joins instruction and input with a newline; keep where the split was, to write it back.
        user = f"{instruction}\n{extra}" if extra else instruction
        messages += [Message(role="user", content=user), Message(role="assistant", content=output)]
        metadata = {"instruction_length": len(instruction)} if extra else None
        return Conversation(messages=messages, metadata=metadata)

    def dump(self, record: Record) -> dict[str, Any]:
        if not isinstance(record, Conversation):
            raise not_supported(self.name, "preference pairs")
        system, messages = system_and_pairs(record, self.name)
        *history, user, answer = messages
        text = user.content or ""
        cut = (record.metadata or {}).get("instruction_length")
        out_first = {"instruction": text[:cut], "input": text[cut + 1 :]} if cut else {"instruction": text, "input": ""}
        result: dict[str, Any] = {**out_first, "output": answer.content or ""}
        if system is not None:
            result["system"] = system
        if history:
            result["history"] = [[history[i].content, history[i + 1].content] for i in range(0, len(history), 2)]
        return result
