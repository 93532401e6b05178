"""A job's data section → train, validation and eval sets (seeded, so a re-run splits the same way)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fto.orchestrator.data.read import read_records
from fto.orchestrator.data.validate import Report, require_valid, validate_file
from fto.orchestrator.errors import DataError
from fto.schemas import Conversation, JobSpec, Message, PreferencePair, Record


@dataclass(frozen=True)
class DatasetSplits:
    train: list[Record]
    validation: list[Record]
    eval: list[Conversation]


def read_dataset(
    path: str, fmt: str = "auto", mapping: dict[str, Any] | None = None, method: str = "sft"
) -> list[Record]:
    """All records of a file, checked to suit the method (conversations for SFT, pairs for DPO, prompts with the
    fields their grader reads for RFT)."""
    report = validate_file(path, None, fmt, mapping)
    if method == "rft":  # RFT rows are prompts: the grader, not an answer in the file, says what is good
        _allow_unanswered(report)
    require_valid(report)
    rows = list(read_records(path, fmt, mapping))
    if not rows:
        raise DataError("no examples in file", file=path)
    wanted = PreferencePair if method == "dpo" else Conversation
    for row in rows:
        if not isinstance(row, wanted):
            holds = "preference pairs" if isinstance(row, PreferencePair) else "single conversations"
            raise DataError(
                f"this file holds {holds}, which method {method!r} cannot train on", file=path, line=row.source_line
            )
    return rows


def seeded_split(rows: list[Record], fraction: float, seed: int) -> tuple[list[Record], list[Record]]:
    """Hold out `fraction` of rows (at least one, and at least one left to train on)."""
    if len(rows) < 2:
        raise DataError(f"{len(rows)} example(s): too few to hold out a validation split")
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    held = min(max(1, round(len(rows) * fraction)), len(rows) - 1)
    held_out = set(order[:held])
    train = [r for i, r in enumerate(rows) if i not in held_out]
    validation = [r for i, r in enumerate(rows) if i in held_out]
    return train, validation


def load_splits(spec: JobSpec) -> DatasetSplits:
    """The job's training data read, checked and split into train, validation and eval examples."""
    data = spec.data
    rows = read_dataset(data.train, data.format, data.mapping, spec.method)
    validation_spec = spec.data.validation
    if isinstance(validation_spec, float):
        train, validation = seeded_split(rows, validation_spec, spec.seed)
    elif isinstance(validation_spec, str):
        train, validation = rows, read_dataset(validation_spec, data.format, data.mapping, spec.method)
    else:
        train, validation = rows, []
    eval_rows: list[Conversation] = []
    if spec.eval:
        eval_rows = (
            [_as_eval_example(r) for r in validation]
            if spec.eval.data == "validation"
            else read_eval_set(spec.eval.data)
        )
        if spec.eval.max_examples:
            eval_rows = eval_rows[: spec.eval.max_examples]
    return DatasetSplits(train=train, validation=validation, eval=eval_rows)


# Questions without answers (MT-Bench's, say) are fine to evaluate: reference-free scorers such as the judge rate them.
UNANSWERED = "example_missing_assistant_message"


def read_eval_set(path: str, fmt: str = "auto", mapping: dict[str, Any] | None = None) -> list[Conversation]:
    """An eval file's examples: checked like training data, except that a question may come without an answer."""
    report = validate_file(path, None, fmt, mapping)
    _allow_unanswered(report)
    require_valid(report)
    rows = [_as_eval_example(r) for r in read_records(path, fmt, mapping)]
    if not rows:
        raise DataError("no examples in file", file=path)
    return rows


def _allow_unanswered(report: Report) -> None:
    report.shown = [f for f in report.shown if f.code != UNANSWERED]
    report.errors -= report.counts.get(("error", UNANSWERED), 0)


def _as_eval_example(record: Record) -> Conversation:
    """Eval asks for a reply to a prompt; a preference pair's chosen reply is the reference, and a question without
    an answer gets an empty one."""
    if isinstance(record, PreferencePair):
        return Conversation(
            messages=[*record.prompt, *record.chosen], tools=record.tools, source_line=record.source_line
        )
    if not any(m.role == "assistant" for m in record.messages):
        return record.model_copy(update={"messages": [*record.messages, Message(role="assistant", content="")]})
    return record


def training_sample(train: list[Record], size: int, seed: int) -> list[Conversation]:
    """Up to `size` training examples (seeded), as eval examples: the generalisation gap is measured on them."""
    order = list(range(len(train)))
    random.Random(seed + 1).shuffle(order)  # not the validation split's order
    return [_as_eval_example(train[i]) for i in sorted(order[:size])]


def save_conversations(rows: list[Conversation], path: Path) -> None:
    """Canonical JSONL, so a later `fto eval` uses exactly the examples this run held out."""
    with open(path, "w", encoding="utf-8") as out:
        for row in rows:
            out.write(row.model_dump_json(exclude_none=True) + "\n")


def load_conversations(path: Path) -> list[Conversation]:
    """Conversations saved by `save_conversations` (one JSON object per line)."""
    with open(path, encoding="utf-8") as f:
        return [Conversation.model_validate_json(line) for line in f if line.strip()]
