"""OpenAI chat fine-tuning JSONL: {"messages": [...], "tools": [...], "parallel_tool_calls": ...} per line."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from orchestrator.data.jsonl import iter_objects
from orchestrator.errors import DataError
from schemas import Conversation, Message, Tool, ToolCall


def read_openai_chat(path: str | Path) -> Iterator[Conversation]:
    """Stream conversations from an OpenAI chat JSONL file; the first bad line raises a DataError."""
    for line, obj in iter_objects(path):
        yield _to_conversation(obj, str(path), line)


def _to_conversation(obj: dict[str, Any], file: str, line: int) -> Conversation:
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages:
        raise DataError("required: a non-empty list of messages", file=file, line=line, field="messages")
    try:
        conversation = Conversation(
            messages=[_to_message(m, i) for i, m in enumerate(messages)],
            tools=[_to_tool(t) for t in obj["tools"]] if obj.get("tools") else None,
            parallel_tool_calls=obj.get("parallel_tool_calls"),
            source_line=line,
        )
    except _FieldError as exc:
        raise DataError(exc.message, file=file, line=line, field=exc.field) from None
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise DataError(err["msg"], file=file, line=line, field=field) from None
    if not any(m.role == "assistant" for m in conversation.messages):
        raise DataError("no assistant message to learn from", file=file, line=line, field="messages")
    return conversation


class _FieldError(Exception):
    def __init__(self, message: str, field: str):
        self.message = message
        self.field = field


def _to_message(raw: Any, index: int) -> Message:
    field = f"messages[{index}]"
    if not isinstance(raw, dict):
        raise _FieldError("expected an object", field)
    content = raw.get("content")
    if isinstance(content, list):  # typed content parts: keep the text ones
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    calls = None
    if raw.get("tool_calls"):
        calls = []
        for j, call in enumerate(raw["tool_calls"]):
            fn = call.get("function") if isinstance(call, dict) else None
            if not isinstance(fn, dict) or "name" not in fn:
                raise _FieldError("expected {'function': {'name', 'arguments'}}", f"{field}.tool_calls[{j}]")
            args = fn.get("arguments", "{}")
            calls.append(
                ToolCall(
                    id=call.get("id"), name=fn["name"], arguments=args if isinstance(args, str) else json.dumps(args)
                )
            )
    try:
        return Message(
            role=raw.get("role"),
            content=content,
            name=raw.get("name"),
            tool_calls=calls,
            tool_call_id=raw.get("tool_call_id"),
            weight=raw.get("weight"),
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        got = raw.get(str(err["loc"][0])) if err["loc"] else None
        raise _FieldError(f"{err['msg']} (got {got!r})", f"{field}.{key}") from None


def _to_tool(raw: Any) -> Tool:
    fn = raw.get("function", raw) if isinstance(raw, dict) else None
    if not isinstance(fn, dict) or "name" not in fn:
        raise _FieldError("expected {'type': 'function', 'function': {'name', ...}}", "tools")
    return Tool(name=fn["name"], description=fn.get("description"), parameters=fn.get("parameters") or {})


def to_openai_chat(conversation: Conversation) -> dict[str, Any]:
    """One line of OpenAI chat fine-tuning JSONL."""
    messages = []
    for m in conversation.messages:
        out: dict[str, Any] = {"role": m.role}
        if m.content is not None or not m.tool_calls:
            out["content"] = m.content or ""
        if m.name:
            out["name"] = m.name
        if m.tool_calls:
            out["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in m.tool_calls
            ]
        if m.tool_call_id:
            out["tool_call_id"] = m.tool_call_id
        if m.weight is not None:
            out["weight"] = m.weight
        messages.append(out)
    line: dict[str, Any] = {"messages": messages}
    if conversation.tools:
        line["tools"] = [{"type": "function", "function": t.model_dump(exclude_none=True)} for t in conversation.tools]
    if conversation.parallel_tool_calls is not None:
        line["parallel_tool_calls"] = conversation.parallel_tool_calls
    return line


def write_openai_chat(conversations: Iterable[Conversation], path: str | Path) -> int:
    """Write conversations as OpenAI chat JSONL; returns how many were written."""
    count = 0
    with open(path, "w", encoding="utf-8") as out:
        for conversation in conversations:
            out.write(json.dumps(to_openai_chat(conversation), ensure_ascii=False) + "\n")
            count += 1
    return count
