"""Prompt/completion pairs: {"prompt", "completion"}, or the same under other names (GSM8K's question/answer,
DBpedia's text/category). The names found are kept so the file can be written back as it was."""

from __future__ import annotations

from typing import Any, ClassVar

from fto.orchestrator.data.formats.base import Format, RecordError, Warn, not_supported, require_str
from fto.schemas import Conversation, Record

PAIRS = [
    ("prompt", "completion"),
    ("question", "answer"),
    ("prompt", "response"),
    ("text", "category"),
    ("text", "label"),
]


class PromptCompletion(Format):
    """One prompt and one answer per row, under any of the common key pairs (prompt/completion, question/answer, …)."""

    name: ClassVar[str] = "prompt_completion"
    description: ClassVar[str] = "prompt/completion pairs (also question/answer, text/category, text/label)"
    kinds: ClassVar[frozenset[str]] = frozenset({"sft"})

    def detect(self, obj: dict[str, Any]) -> bool:
        return any(p in obj and c in obj and isinstance(obj[c], str) for p, c in PAIRS)

    def parse(self, obj: dict[str, Any], warn: Warn) -> Record:
        keys = next(((p, c) for p, c in PAIRS if p in obj and c in obj), None)
        if keys is None:
            raise RecordError("missing_key", None, "expected one of " + ", ".join(f"{p}/{c}" for p, c in PAIRS))
        prompt, completion = keys
        metadata: dict[str, Any] = {k: v for k, v in obj.items() if k not in keys}
        if keys != PAIRS[0]:
            metadata["keys"] = list(keys)
        turns = [
            {"role": "user", "content": require_str(obj, prompt)},
            {"role": "assistant", "content": require_str(obj, completion)},
        ]
        return Conversation.model_validate({"messages": turns, "metadata": metadata or None})  # one call: faster

    def dump(self, record: Record) -> dict[str, Any]:
        if not isinstance(record, Conversation):
            raise not_supported(self.name, "preference pairs")
        roles = [m.role for m in record.messages]
        if "system" in roles:
            raise not_supported(self.name, "a system message (one prompt and one answer; convert to chat to keep it)")
        if roles != ["user", "assistant"]:
            raise not_supported(
                self.name, f"{len(roles)} turns ({', '.join(roles)}): only one user and one assistant turn"
            )
        metadata = dict(record.metadata or {})
        prompt, completion = metadata.pop("keys", PAIRS[0])
        return {prompt: record.messages[0].content or "", completion: record.messages[1].content or "", **metadata}
