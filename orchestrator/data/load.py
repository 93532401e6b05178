"""A job's data section → train, validation and eval sets (seeded, so a re-run splits the same way)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from orchestrator.data.openai_chat import read_openai_chat
from orchestrator.errors import DataError
from schemas import Conversation, JobSpec

READERS = {"openai_chat": read_openai_chat}


@dataclass(frozen=True)
class DatasetSplits:
    train: list[Conversation]
    validation: list[Conversation]
    eval: list[Conversation]


def read_dataset(path: str, fmt: str = "auto") -> list[Conversation]:
    if fmt == "auto":
        fmt = "openai_chat"  # the only format so far; detection grows with the readers
    if fmt not in READERS:
        raise DataError(f"unknown format {fmt!r} (known: {', '.join(READERS)})", field="data.format")
    rows = list(READERS[fmt](path))
    if not rows:
        raise DataError("no examples in file", file=path)
    return rows


def seeded_split(rows: list[Conversation], fraction: float, seed: int) -> tuple[list[Conversation], list[Conversation]]:
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
    rows = read_dataset(spec.data.train, spec.data.format)
    validation_spec = spec.data.validation
    if isinstance(validation_spec, float):
        train, validation = seeded_split(rows, validation_spec, spec.seed)
    elif isinstance(validation_spec, str):
        train, validation = rows, read_dataset(validation_spec, spec.data.format)
    else:
        train, validation = rows, []
    eval_rows: list[Conversation] = []
    if spec.eval:
        eval_rows = validation if spec.eval.data == "validation" else read_dataset(spec.eval.data, spec.data.format)
        if spec.eval.max_examples:
            eval_rows = eval_rows[: spec.eval.max_examples]
    return DatasetSplits(train=train, validation=validation, eval=eval_rows)


def save_conversations(rows: list[Conversation], path: Path) -> None:
    """Canonical JSONL, so a later `fto eval` uses exactly the examples this run held out."""
    with open(path, "w", encoding="utf-8") as out:
        for row in rows:
            out.write(row.model_dump_json(exclude_none=True) + "\n")


def load_conversations(path: Path) -> list[Conversation]:
    with open(path, encoding="utf-8") as f:
        return [Conversation.model_validate_json(line) for line in f if line.strip()]
