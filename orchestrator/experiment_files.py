"""An experiment's documents — its held-out examples, the training sample, the data check, every model's answers
and scores, eval usage and the generalisation gap — kept in the store, so any machine that shares the store (a
team's PostgreSQL) evaluates, compares and renders with no file from another machine.

Each is also written under FTO_HOME/experiments/ID/ for people and tools to read; reading takes the store's copy,
and a file only for experiments recorded before the store kept them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from fto.orchestrator.paths import experiment_dir
from fto.orchestrator.store import Store
from fto.schemas.results import ExampleResult

_ANSWERS: TypeAdapter[list[ExampleResult]] = TypeAdapter(list[ExampleResult])

CHECK = "check.json"
PLAN = "plan.json"  # `fto plan`'s answer at submit: what each job was expected to cost, take and need
HELD_OUT = "eval.jsonl"
TRAIN_SAMPLE = "train_sample.jsonl"
USAGE = "eval/usage.json"
TIMING = "eval/timing.json"
GAP = "eval/gap.json"


def outputs_name(label: str) -> str:
    """Where a model's per-example answers and scores are kept."""
    return f"eval/{label.replace('/', '.')}.jsonl"


def save(store: Store, experiment_id: str, name: str, text: str) -> Path:
    """Keep a document in the store, and its copy on this machine (returned)."""
    store.save_document(experiment_id, name, text)
    path = experiment_dir(experiment_id) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load(store: Store, experiment_id: str, name: str) -> str | None:
    """A document from the store (a file, for an experiment recorded before the store kept them); None if none."""
    found = store.document(experiment_id, name)
    if found is not None:
        return found
    path = experiment_dir(experiment_id) / name
    return path.read_text(encoding="utf-8") if path.exists() else None


def load_json(store: Store, experiment_id: str, name: str) -> Any:
    """A JSON document, None when there is none."""
    text = load(store, experiment_id, name)
    return json.loads(text) if text else None


def load_rows(store: Store, experiment_id: str, name: str) -> list[dict[str, Any]] | None:
    """A JSONL document as its objects, None when there is none."""
    text = load(store, experiment_id, name)
    return None if text is None else [json.loads(line) for line in text.splitlines() if line.strip()]


def rows_text(rows: list[Any]) -> str:
    """Objects (dicts, or pydantic models) as JSONL."""
    return "".join((r.model_dump_json(exclude_none=True) if hasattr(r, "model_dump_json") else json.dumps(r)) + "\n"
                   for r in rows)  # fmt: skip


def local_copy(store: Store, experiment_id: str, name: str) -> Path | None:
    """A document as a file on this machine (written from the store when this machine has none), for code that
    reads files: the dashboard's data pages."""
    path = experiment_dir(experiment_id) / name
    if not path.exists():
        text = store.document(experiment_id, name)
        if text is None:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return path


def load_answers(store: Store, experiment_id: str, label: str) -> list[ExampleResult] | None:
    """A model's recorded answer to each held-out example, None when it was not evaluated."""
    text = load(store, experiment_id, outputs_name(label))
    if text is None:
        return None
    # one JSON array parsed and validated in pydantic-core: 10,000 answers in a few tens of milliseconds
    return _ANSWERS.validate_json("[" + ",".join(line for line in text.splitlines() if line.strip()) + "]")


def save_answers(store: Store, experiment_id: str, label: str, answers: list[ExampleResult]) -> None:
    """Keep a model's answers (and a copy under FTO_HOME, as every document)."""
    save(store, experiment_id, outputs_name(label), rows_text(answers))
