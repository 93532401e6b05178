"""What every dataset format provides: recognise an object, read it into a canonical record, write one back."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import ValidationError

from fto.schemas import Message, Record, Tool, ToolCall

Warn = Callable[[str, str, str], None]  # code, field, message


class RecordError(Exception):
    """One record cannot be read (or written): which field, and why."""

    def __init__(self, code: str, field: str | None, message: str):
        self.code, self.field, self.message = code, field, message
        super().__init__(message)


class Format(ABC):
    """A dataset format: recognises its objects, reads them into canonical records, and (when writable) writes them."""

    name: ClassVar[str]
    description: ClassVar[str]
    kinds: ClassVar[frozenset[str]]  # "sft" and/or "preference": what it reads and writes
    priority: ClassVar[int] = 0  # detection tries higher first: a shape that is a special case of another goes first

    @abstractmethod
    def detect(self, obj: dict[str, Any]) -> bool:
        """Whether a file whose first object is `obj` is in this format."""

    @abstractmethod
    def parse(self, obj: dict[str, Any], warn: Warn) -> Record:
        """One canonical record; raises RecordError naming the field at fault."""

    def dump(self, record: Record) -> dict[str, Any]:
        """One object of this format; raises RecordError when the format cannot hold the record."""
        raise RecordError("cannot_write", None, f"fto cannot write the {self.name} format")

    @property
    def writable(self) -> bool:
        return type(self).dump is not Format.dump


def not_supported(fmt: str, what: str) -> RecordError:
    """The error for a record that format `fmt` cannot hold."""
    return RecordError("cannot_write", None, f"the {fmt} format cannot hold {what}")


def build_message(data: dict[str, Any], field: str) -> Message:
    """A Message from a raw object, or a RecordError naming the field at fault."""
    try:
        return Message.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        got = data.get(str(err["loc"][0])) if err["loc"] else None
        code = "unrecognized_role" if key == "role" else "invalid_field"
        raise RecordError(code, f"{field}.{key}", f"{err['msg']} (got {_short(got)})") from None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_tools(raw: Any, field: str = "tools") -> list[Tool] | None:
    """OpenAI-style tool declarations, as a list or a JSON string of one (LLaMA-Factory keeps them as text)."""
    if raw in (None, "", []):
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise RecordError("invalid_tools", field, f"tools is not valid JSON: {exc.msg}") from None
    if not isinstance(raw, list):
        raise RecordError("invalid_tools", field, "expected a list of tools")
    if not raw:
        return None
    tools = []
    for i, item in enumerate(raw):
        fn = item.get("function", item) if isinstance(item, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise RecordError(
                "invalid_tools", f"{field}[{i}]", "expected {'type': 'function', 'function': {'name', …}}"
            )
        params = fn.get("parameters") or {}
        tools.append(Tool(name=fn["name"], description=fn.get("description"), parameters=params))
    return tools


def tools_json(tools: list[Tool] | None) -> list[dict[str, Any]] | None:
    """Tool declarations in the chat format's JSON shape (None when there are none)."""
    if not tools:
        return None
    return [{"type": "function", "function": t.model_dump(exclude_none=True)} for t in tools]


def tool_call_from_json(text: Any, field: str, call_id: str | None = None) -> ToolCall:
    """A {"name", "arguments"} object (or its JSON text), as ShareGPT and LLaMA-Factory write calls."""
    value = text
    if isinstance(text, str):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RecordError("invalid_tool_call", field, f"tool call is not valid JSON: {exc.msg}") from None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise RecordError("invalid_tool_call", field, "expected a tool call {'name': …, 'arguments': …}")
    args = value.get("arguments", {})
    return ToolCall(id=call_id, name=value["name"], arguments=args if isinstance(args, str) else json.dumps(args))


def tool_call_to_json(call: ToolCall) -> str:
    """A tool call as the JSON text of {"name", "arguments"} (arguments parsed when they are JSON)."""
    try:
        args: Any = json.loads(call.arguments)
    except json.JSONDecodeError:
        args = call.arguments
    return json.dumps({"name": call.name, "arguments": args}, ensure_ascii=False)


def system_and_pairs(record: Any, fmt: str) -> tuple[str | None, list[Message]]:
    """A leading system message (if any) and the turns after it, which must be user/assistant pairs in order
    with no tools: what Alpaca and Bedrock's Claude format can hold."""
    if record.tools or any(m.tool_calls or m.role == "tool" for m in record.messages):
        raise not_supported(fmt, "tools or tool calls")
    messages = list(record.messages)
    system = messages.pop(0).content or "" if messages and messages[0].role == "system" else None
    roles = [m.role for m in messages]
    if not roles or roles != ["user", "assistant"] * (len(roles) // 2):
        raise not_supported(fmt, "turns other than user/assistant alternating, starting with user")
    return system, messages


def require_list(obj: dict[str, Any], key: str) -> list[Any]:
    """`obj[key]`, which must be a list; otherwise a RecordError naming the key."""
    value = obj.get(key)
    if key not in obj:
        raise RecordError("missing_key", key, f"required key {key!r} is missing")
    if not isinstance(value, list) or not value:
        raise RecordError("invalid_field", key, "expected a non-empty list")
    return value


def require_str(obj: dict[str, Any], key: str, field: str | None = None) -> str:
    """`obj[key]`, which must be a string; otherwise a RecordError naming `field`."""
    field = field or key
    if key not in obj:
        raise RecordError("missing_key", field, f"required key {key!r} is missing")
    value = obj[key]
    if not isinstance(value, str):
        raise RecordError("invalid_field", field, f"expected a string, got {type(value).__name__}")
    return value


def split_preference(
    chosen: list[Message], rejected: list[Message], field: str
) -> tuple[list[Message], list[Message], list[Message]]:
    """Two full conversations → (shared prompt, chosen continuation, rejected continuation)."""
    n = 0
    while n < min(len(chosen), len(rejected)) - 1 and chosen[n] == rejected[n]:
        n += 1
    if n == 0 or (chosen[n - 1].role == "assistant" and n == len(chosen)):
        raise RecordError("no_shared_prompt", field, "chosen and rejected share no prompt")
    return chosen[:n], chosen[n:], rejected[n:]
