"""Anthropic hh-rlhf: {"chosen", "rejected"} as full "\n\nHuman: … \n\nAssistant: …" transcripts → preference pairs."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from fto.orchestrator.data.formats.base import Format, RecordError, Warn, not_supported, require_str
from fto.schemas import Message, PreferencePair, Record

_TURN = re.compile(r"\n\n(Human|Assistant):")
_ROLE = {"Human": "user", "Assistant": "assistant"}
_SPEAKER = {"user": "Human", "assistant": "Assistant"}


def parse_transcript(text: str, field: str) -> list[Message]:
    """Messages from a "\n\nHuman: … \n\nAssistant: …" transcript."""
    parts = _TURN.split(text)
    if parts[0].strip() or len(parts) < 3:
        raise RecordError("invalid_transcript", field, 'expected "\\n\\nHuman: … \\n\\nAssistant: …" turns')
    return [Message(role=_ROLE[parts[i]], content=parts[i + 1]) for i in range(1, len(parts), 2)]  # type: ignore[arg-type]


def transcript(messages: list[Message]) -> str:
    """Messages written back as one hh-rlhf transcript."""
    return "".join(f"\n\n{_SPEAKER[m.role]}:{m.content or ''}" for m in messages)


class HHRLHF(Format):
    """hh-rlhf preference pairs: chosen and rejected transcripts that share every turn but the last."""

    name: ClassVar[str] = "hh_rlhf"
    description: ClassVar[str] = 'Anthropic hh-rlhf transcripts (chosen/rejected "\\n\\nHuman: … \\n\\nAssistant: …")'
    kinds: ClassVar[frozenset[str]] = frozenset({"preference"})
    priority: ClassVar[int] = 20

    def detect(self, obj: dict[str, Any]) -> bool:
        chosen = obj.get("chosen")
        return isinstance(chosen, str) and "\n\nHuman:" in chosen and isinstance(obj.get("rejected"), str)

    def parse(self, obj: dict[str, Any], warn: Warn) -> Record:
        chosen = parse_transcript(require_str(obj, "chosen"), "chosen")
        rejected = parse_transcript(require_str(obj, "rejected"), "rejected")
        for field, turns in (("chosen", chosen), ("rejected", rejected)):
            if turns[-1].role != "assistant":
                raise RecordError("no_assistant_turn", field, "the transcript does not end with an Assistant turn")
        prompt = chosen[:-1]
        if rejected[:-1] != prompt:
            # Seen in the published data: the two transcripts diverge before the last turn. The pair still
            # trains on the chosen prompt, but say so.
            warn("prefix_mismatch", "rejected", "chosen and rejected differ before their last Assistant turn")
        return PreferencePair(
            prompt=prompt,
            chosen=chosen[-1:],
            rejected=rejected[-1:],
            metadata={"rejected_prompt": transcript(rejected[:-1])} if rejected[:-1] != prompt else None,
        )

    def dump(self, record: Record) -> dict[str, Any]:
        if not isinstance(record, PreferencePair):
            raise not_supported(self.name, "single conversations")
        if any(m.role not in _SPEAKER or m.tool_calls for m in [*record.prompt, *record.chosen, *record.rejected]):
            raise not_supported(self.name, "system or tool turns")
        rejected_prompt = (record.metadata or {}).get("rejected_prompt")
        return {
            "chosen": transcript([*record.prompt, *record.chosen]),
            "rejected": (rejected_prompt if rejected_prompt is not None else transcript(record.prompt))
            + transcript(record.rejected),
        }
