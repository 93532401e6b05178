"""OpenAI chat fine-tuning JSONL: {"messages": [...], "tools": [...], "parallel_tool_calls": …} per line.

Also KTO-style files (a boolean `label` beside the messages).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from pydantic import TypeAdapter, ValidationError

from fto.orchestrator.data.formats.base import (
    Format,
    RecordError,
    Warn,
    not_supported,
    parse_tools,
    require_list,
    tools_json,
)
from fto.schemas import Conversation, Message, Record, ToolCall

MESSAGE_KEYS = {"role", "content", "name", "tool_calls", "tool_call_id", "weight", "function_call", "reasoning"}
TOP_KEYS = {"messages", "tools", "parallel_tool_calls", "functions", "label"}


_MESSAGES = TypeAdapter(list[Message])
_PLAIN_KEYS = frozenset({"role", "content", "name", "tool_call_id", "weight"})


def parse_messages(raw: list[Any], warn: Warn, field: str = "messages") -> list[Message]:
    """OpenAI-style message objects → Messages, validated in one pass (this is the validator's hot path)."""
    dicts = [_normalize(m, f"{field}[{i}]", warn) for i, m in enumerate(raw)]
    try:
        return _MESSAGES.validate_python(dicts)
    except ValidationError as exc:
        err = exc.errors()[0]
        index, *rest = err["loc"]
        key = ".".join(str(p) for p in rest)
        got = dicts[int(index)].get(str(rest[0])) if rest else None
        code = {"role": "unrecognized_role", "weight": "invalid_weight"}.get(key, "invalid_field")
        raise RecordError(code, f"{field}[{index}].{key}", f"{err['msg']} (got {got!r:.60})") from None


def _normalize(raw: Any, field: str, warn: Warn) -> dict[str, Any]:
    if type(raw) is not dict:
        raise RecordError("data_type", field, "expected a message object")
    if "role" not in raw:
        raise RecordError("message_missing_key", f"{field}.role", "message has no role")
    content = raw.get("content")
    if raw.keys() <= _PLAIN_KEYS and (type(content) is str or content is None) and raw["role"] != "function":
        return raw  # the common case: nothing to translate
    unknown = raw.keys() - MESSAGE_KEYS
    if unknown:
        warn("message_unrecognized_key", f"{field}.{min(unknown)}", f"unrecognised key(s) ignored: {sorted(unknown)}")
    if isinstance(content, list):  # typed content parts
        if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content):
            raise RecordError("invalid_field", f"{field}.content", "content parts must be {'type': 'text', 'text': …}")
        content = "".join(p["text"] for p in content)
    calls = None
    if raw.get("tool_calls"):
        if not isinstance(raw["tool_calls"], list):
            raise RecordError("invalid_tool_call", f"{field}.tool_calls", "expected a list of tool calls")
        calls = [_tool_call(c, f"{field}.tool_calls[{j}]") for j, c in enumerate(raw["tool_calls"])]
    elif isinstance(raw.get("function_call"), dict):  # the legacy single-call form
        calls = [_tool_call({"function": raw["function_call"]}, f"{field}.function_call")]
    data = {k: raw[k] for k in ("role", "name", "tool_call_id", "weight", "reasoning") if raw.get(k) is not None}
    if raw.get("role") == "function":  # legacy name of the tool role
        data["role"] = "tool"
    return {**data, "content": content, "tool_calls": calls}


def _tool_call(raw: Any, field: str) -> ToolCall:
    fn = raw.get("function") if isinstance(raw, dict) else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise RecordError("invalid_tool_call", field, "expected {'function': {'name', 'arguments'}}")
    args = fn.get("arguments", "{}")
    return ToolCall(id=raw.get("id"), name=fn["name"], arguments=args if isinstance(args, str) else json.dumps(args))


def dump_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Messages as chat-format message objects."""
    out = []
    for m in messages:
        item: dict[str, Any] = {"role": m.role}
        if m.content is not None or not m.tool_calls:
            item["content"] = m.content or ""
        if m.name:
            item["name"] = m.name
        if m.tool_calls:
            item["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in m.tool_calls
            ]
        if m.tool_call_id:
            item["tool_call_id"] = m.tool_call_id
        if m.weight is not None:
            item["weight"] = m.weight
        out.append(item)
    return out


class Chat(Format):
    """The chat JSONL most providers train on: {"messages", "tools"?, "parallel_tool_calls"?} per line."""

    name: ClassVar[str] = "chat"
    description: ClassVar[str] = "OpenAI chat JSONL (messages, tools, tool_calls, weight; KTO label)"
    kinds: ClassVar[frozenset[str]] = frozenset({"sft"})
    priority: ClassVar[int] = 50

    def detect(self, obj: dict[str, Any]) -> bool:
        return isinstance(obj.get("messages"), list)

    def parse(self, obj: dict[str, Any], warn: Warn) -> Record:
        if "messages" not in obj:
            raise RecordError("missing_messages_list", "messages", "no messages list")
        messages = parse_messages(require_list(obj, "messages"), warn)
        unknown = obj.keys() - TOP_KEYS
        if unknown:
            warn("unrecognized_key", sorted(unknown)[0], f"key(s) not used for training: {sorted(unknown)}")
        label = obj.get("label")
        if label is not None and not isinstance(label, bool):
            raise RecordError("invalid_field", "label", "a KTO label must be true or false")
        fields = {key: obj[key] for key in sorted(unknown)}  # graders read them as {{ item.KEY }}
        return Conversation(
            messages=messages,
            tools=parse_tools(obj.get("tools")),
            parallel_tool_calls=obj.get("parallel_tool_calls"),
            label=label,
            metadata={"fields": fields} if fields else None,
        )

    def dump(self, record: Record) -> dict[str, Any]:
        if not isinstance(record, Conversation):
            raise not_supported(self.name, "preference pairs (use preference)")
        line: dict[str, Any] = {"messages": dump_messages(record.messages)}
        if record.tools:
            line["tools"] = tools_json(record.tools)
        if record.parallel_tool_calls is not None:
            line["parallel_tool_calls"] = record.parallel_tool_calls
        if record.label is not None:
            line["label"] = record.label
        return line


class RftPrompts(Chat):
    """Reinforcement fine-tuning rows (OpenAI's shape): the prompt's messages plus the fields graders read."""

    name: ClassVar[str] = "rft"
    description: ClassVar[str] = "RFT prompts: chat messages plus the top-level fields graders read ({{ item.* }})"
    kinds: ClassVar[frozenset[str]] = frozenset({"rft"})
    priority: ClassVar[int] = 0

    def detect(self, obj: dict[str, Any]) -> bool:
        return False  # read as chat (which keeps the fields); written for RFT jobs

    def dump(self, record: Record) -> dict[str, Any]:
        """The prompt (ending with the user's turn, as providers require) and the row's fields."""
        prompt, fields = rft_prompt(record, self.name)
        return {**fields, **super().dump(prompt)}


def rft_prompt(record: Record, fmt: str) -> tuple[Conversation, dict[str, Any]]:
    """An RFT row as its prompt (up to the user's last turn) and the fields graders read; a reference answer the
    row carries becomes the `reference` field, which graders read as `{{ item.reference }}` on every backend."""
    if not isinstance(record, Conversation):
        raise not_supported(fmt, "preference pairs (use preference)")
    fields = dict((record.metadata or {}).get("fields") or {})
    messages = list(record.messages)
    if messages and messages[-1].role == "assistant":
        fields.setdefault("reference", messages[-1].content or "")
    while messages and messages[-1].role == "assistant":
        messages.pop()
    return record.model_copy(update={"messages": messages}), fields
