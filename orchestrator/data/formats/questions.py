"""Eval question sets such as MT-Bench: {"question_id", "category", "turns": [...], "reference"?: [...]}.

The first turn becomes the prompt and the first reference answer (when there is one) the expected reply; the
rest is kept in metadata for a judge to use.
"""

from __future__ import annotations

from typing import Any, ClassVar

from fto.orchestrator.data.formats.base import Format, RecordError, Warn, not_supported, require_list
from fto.schemas import Conversation, Message, Record


class Questions(Format):
    """Eval questions without necessarily an answer (MT-Bench's question_id / turns / reference)."""

    name: ClassVar[str] = "questions"
    description: ClassVar[str] = "eval questions (MT-Bench: question_id, turns, reference)"
    kinds: ClassVar[frozenset[str]] = frozenset({"sft"})
    priority: ClassVar[int] = 10

    def detect(self, obj: dict[str, Any]) -> bool:
        return isinstance(obj.get("turns"), list) and "question_id" in obj

    def parse(self, obj: dict[str, Any], warn: Warn) -> Record:
        turns = require_list(obj, "turns")
        if not all(isinstance(t, str) for t in turns):
            raise RecordError("invalid_field", "turns", "expected a list of strings")
        messages = [Message(role="user", content=turns[0])]
        reference = obj.get("reference") or []
        if reference and str(reference[0]).strip():  # MT-Bench has an empty reference or two: no reference
            messages.append(Message(role="assistant", content=str(reference[0])))
        metadata = {k: v for k, v in obj.items() if k not in ("turns", "reference")}
        metadata.update(turns=turns, reference=reference or None)
        return Conversation(messages=messages, metadata=metadata)

    def dump(self, record: Record) -> dict[str, Any]:
        if not isinstance(record, Conversation) or not record.metadata or "turns" not in record.metadata:
            raise not_supported(self.name, "examples that did not come from a question set")
        out = {k: v for k, v in record.metadata.items() if v is not None}
        return out
