"""LLaMA-Factory v1: messages whose content is typed parts (text, reasoning, tool_call) with a `loss_weight`;
DPO files hold two such conversations, `chosen_messages` and `rejected_messages`."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from fto.orchestrator.data.formats.base import (
    Format,
    RecordError,
    Warn,
    build_message,
    not_supported,
    parse_tools,
    require_list,
    split_preference,
    tool_call_from_json,
    tool_call_to_json,
)
from fto.schemas import Conversation, Message, PreferencePair, Record, Tool


def _is_typed(messages: Any) -> bool:
    return (
        isinstance(messages, list)
        and bool(messages)
        and isinstance(messages[0], dict)
        and isinstance(messages[0].get("content"), list)
        and all(isinstance(p, dict) and "value" in p for p in messages[0]["content"])
    )


def parse_typed(raw: list[Any], field: str) -> list[Message]:
    """Messages from LLaMA-Factory v1's typed content parts (text, reasoning, tool calls)."""
    out = []
    for i, m in enumerate(raw):
        f = f"{field}[{i}]"
        if not isinstance(m, dict) or not isinstance(m.get("content"), list):
            raise RecordError("data_type", f, "expected {'role', 'content': [typed parts]}")
        text, reasoning, calls = [], [], []
        for j, part in enumerate(m["content"]):
            kind, value = (
                part.get("type") if isinstance(part, dict) else None,
                part.get("value") if isinstance(part, dict) else None,
            )
            if kind == "text" and isinstance(value, str):
                text.append(value)
            elif kind == "reasoning" and isinstance(value, str):
                reasoning.append(value)
            elif kind == "tool_call":
                calls.append(tool_call_from_json(value, f"{f}.content[{j}].value"))
            else:
                raise RecordError("invalid_field", f"{f}.content[{j}]", f"unsupported content part {kind!r}")
        weight = m.get("loss_weight")
        data: dict[str, Any] = {"role": m.get("role"), "content": "".join(text) if text or not calls else None}
        if reasoning:
            data["reasoning"] = "".join(reasoning)
        if calls:
            data["tool_calls"] = calls
        if weight is not None:
            if weight not in (0, 1):
                raise RecordError("invalid_weight", f"{f}.loss_weight", f"loss_weight must be 0 or 1, got {weight!r}")
            data["weight"] = int(weight)
        out.append(build_message(data, f))
    return out


def dump_typed(messages: list[Message]) -> list[dict[str, Any]]:
    """Messages as LLaMA-Factory v1 typed content parts."""
    out = []
    for m in messages:
        parts = []
        if m.reasoning:
            parts.append({"type": "reasoning", "value": m.reasoning})
        if m.content is not None:
            parts.append({"type": "text", "value": m.content})
        parts += [{"type": "tool_call", "value": tool_call_to_json(c)} for c in m.tool_calls or []]
        item: dict[str, Any] = {"role": m.role, "content": parts}
        if m.weight is not None:
            item["loss_weight"] = float(m.weight)
        out.append(item)
    return out


def _tools_text(tools: list[Tool] | None) -> str | None:
    if not tools:
        return None
    return json.dumps(
        [{"type": "function", "function": t.model_dump(exclude_none=True)} for t in tools], ensure_ascii=False
    )


class LlamaFactoryV1(Format):
    """LLaMA-Factory's v1 JSONL: typed-content `messages` (SFT) or `chosen_messages` / `rejected_messages` (DPO)."""

    name: ClassVar[str] = "llamafactory_v1"
    description: ClassVar[str] = "LLaMA-Factory v1 typed-content SFT (messages) and DPO (chosen_/rejected_messages)"
    kinds: ClassVar[frozenset[str]] = frozenset({"sft", "preference"})
    priority: ClassVar[int] = 80

    def detect(self, obj: dict[str, Any]) -> bool:
        return _is_typed(obj.get("messages")) or _is_typed(obj.get("chosen_messages"))

    def parse(self, obj: dict[str, Any], warn: Warn) -> Record:
        tools = parse_tools(obj.get("tools"))
        if "chosen_messages" in obj:
            chosen = parse_typed(require_list(obj, "chosen_messages"), "chosen_messages")
            rejected = parse_typed(require_list(obj, "rejected_messages"), "rejected_messages")
            prompt, chosen_tail, rejected_tail = split_preference(chosen, rejected, "rejected_messages")
            return PreferencePair(prompt=prompt, chosen=chosen_tail, rejected=rejected_tail, tools=tools)
        return Conversation(messages=parse_typed(require_list(obj, "messages"), "messages"), tools=tools)

    def dump(self, record: Record) -> dict[str, Any]:
        if isinstance(record, PreferencePair):
            out: dict[str, Any] = {
                "chosen_messages": dump_typed([*record.prompt, *record.chosen]),
                "rejected_messages": dump_typed([*record.prompt, *record.rejected]),
            }
        else:
            if record.label is not None:
                raise not_supported(self.name, "KTO labels")
            out = {"messages": dump_typed(record.messages)}
        if record.tools:
            out["tools"] = _tools_text(record.tools)
        return out
