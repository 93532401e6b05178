"""Gemini's tuning JSONL on Vertex AI.

Supervised: {"systemInstruction"?: {"role": "system", "parts": [{"text"}]}, "contents": [{"role": "user" | "model",
"parts": [{"text"}]}, …]}. Preference: {"system_instruction"?, "contents": [… ending with a user turn],
"completions": [{"score": 1, "completion": {"role": "model", "parts"}}, {"score": 0, …}]} (Vertex's own spellings).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Literal

from fto.orchestrator.data.formats.base import Format, RecordError, Warn, not_supported, require_list, system_and_pairs
from fto.orchestrator.data.formats.chat import rft_prompt
from fto.schemas import Conversation, Message, PreferencePair, Record

ROLES: dict[str, Literal["user", "assistant"]] = {"user": "user", "model": "assistant"}


def _text(turn: Any, field: str) -> str:
    parts = turn.get("parts") if isinstance(turn, dict) else None
    if not isinstance(parts, list) or not parts:
        raise RecordError("invalid_field", f"{field}.parts", "expected a non-empty list of parts")
    if not all(isinstance(p, dict) and isinstance(p.get("text"), str) for p in parts):
        raise RecordError("invalid_field", f"{field}.parts", "only text parts can be trained on here")
    return "".join(p["text"] for p in parts)


def _turns(contents: list[Any], field: str) -> list[Message]:
    out = []
    for i, turn in enumerate(contents):
        role = ROLES.get(str(turn.get("role")) if isinstance(turn, dict) else "")
        if role is None:
            raise RecordError("unrecognized_role", f"{field}[{i}].role", "Gemini turns are user or model")
        out.append(Message(role=role, content=_text(turn, f"{field}[{i}]")))
    return out


def _system(obj: dict[str, Any], key: str) -> list[Message]:
    return [Message(role="system", content=_text(obj[key], key))] if key in obj else []


def _content(message: Message) -> dict[str, Any]:
    return {"role": "model" if message.role == "assistant" else "user", "parts": [{"text": message.content or ""}]}


class GeminiChat(Format):
    """Vertex AI Gemini supervised tuning lines: contents of user/model turns, an optional systemInstruction."""

    name: ClassVar[str] = "gemini"
    description: ClassVar[str] = "Vertex AI Gemini supervised tuning JSONL (contents / parts, systemInstruction)"
    kinds: ClassVar[frozenset[str]] = frozenset({"sft"})
    priority: ClassVar[int] = 60

    def detect(self, obj: dict[str, Any]) -> bool:
        return isinstance(obj.get("contents"), list) and "completions" not in obj

    def parse(self, obj: dict[str, Any], warn: Warn) -> Record:
        turns = _turns(require_list(obj, "contents"), "contents")
        return Conversation(messages=_system(obj, "systemInstruction") + turns)

    def dump(self, record: Record) -> dict[str, Any]:
        if not isinstance(record, Conversation):
            raise not_supported(self.name, "preference pairs (use gemini_preference)")
        system, messages = system_and_pairs(record, self.name)
        out: dict[str, Any] = {}
        if system is not None:
            out["systemInstruction"] = {"role": "system", "parts": [{"text": system}]}
        out["contents"] = [_content(m) for m in messages]
        return out


class GeminiRft(Format):
    """Vertex AI reinforcement tuning lines (ReinforcementTuningExample): the prompt's contents, and `references`,
    the row's fields as strings, which a reward's `{{references.FIELD}}` reads."""

    name: ClassVar[str] = "gemini_rft"
    description: ClassVar[str] = "Vertex AI reinforcement tuning JSONL (contents ending with a user turn, references)"
    kinds: ClassVar[frozenset[str]] = frozenset({"rft"})
    priority: ClassVar[int] = 0

    def detect(self, obj: dict[str, Any]) -> bool:
        return False  # written for RFT jobs, not read back

    def parse(self, obj: dict[str, Any], warn: Warn) -> Record:
        turns = _system(obj, "systemInstruction") + _turns(require_list(obj, "contents"), "contents")
        return Conversation(messages=turns, metadata={"fields": dict(obj.get("references") or {})})

    def dump(self, record: Record) -> dict[str, Any]:
        prompt, fields = rft_prompt(record, self.name)
        messages = list(prompt.messages)
        out: dict[str, Any] = {}
        if messages and messages[0].role == "system":
            out["systemInstruction"] = {"role": "system", "parts": [{"text": messages.pop(0).content or ""}]}
        if not messages or prompt.tools or any(m.role not in ("user", "assistant") for m in messages):
            raise not_supported(self.name, "prompts without a user turn, or with tools")
        out["contents"] = [_content(m) for m in messages]
        out["references"] = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
        return out


class GeminiPreference(Format):
    """Vertex AI Gemini preference tuning lines: contents ending with a user turn, one preferred and one
    dispreferred completion (scores 1 and 0)."""

    name: ClassVar[str] = "gemini_preference"
    description: ClassVar[str] = "Vertex AI Gemini preference tuning JSONL (contents, completions with scores)"
    kinds: ClassVar[frozenset[str]] = frozenset({"preference"})
    priority: ClassVar[int] = 60

    def detect(self, obj: dict[str, Any]) -> bool:
        return isinstance(obj.get("contents"), list) and isinstance(obj.get("completions"), list)

    def parse(self, obj: dict[str, Any], warn: Warn) -> Record:
        prompt = _system(obj, "system_instruction") + _turns(require_list(obj, "contents"), "contents")
        scored: dict[int, list[Message]] = {}
        for i, item in enumerate(require_list(obj, "completions")):
            if not isinstance(item, dict) or item.get("score") not in (0, 1):
                raise RecordError("invalid_field", f"completions[{i}].score", "a score is 0 or 1")
            scored[int(item["score"])] = _turns([item.get("completion")], f"completions[{i}].completion")
        if set(scored) != {0, 1}:
            raise RecordError("invalid_field", "completions", "one completion scored 1 and one scored 0")
        return PreferencePair(prompt=prompt, chosen=scored[1], rejected=scored[0])

    def dump(self, record: Record) -> dict[str, Any]:
        if not isinstance(record, PreferencePair):
            raise not_supported(self.name, "single conversations (use gemini)")
        messages = list(record.prompt)
        out: dict[str, Any] = {}
        if messages and messages[0].role == "system":
            out["system_instruction"] = {"parts": [{"text": messages.pop(0).content or ""}]}
        if not messages or messages[-1].role != "user" or any(m.role not in ("user", "assistant") for m in messages):
            raise not_supported(self.name, "prompts that do not end with a user turn, or hold tools")
        for side in (record.chosen, record.rejected):
            if len(side) != 1 or side[0].role != "assistant":
                raise not_supported(self.name, "completions longer than one model turn")
        out["contents"] = [_content(m) for m in messages]
        out["completions"] = [
            {"score": 1, "completion": _content(record.chosen[0])},
            {"score": 0, "completion": _content(record.rejected[0])},
        ]
        return out
