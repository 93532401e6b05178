"""The per-example view: each eval prompt with its reference and every model's answer and scores, and which
examples a fine-tune made better or worse than its base (the report and the dashboard show the same rows)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from fto.orchestrator import experiment_files as files
from fto.orchestrator.eval.scorers import lower_is_better
from fto.orchestrator.store import Store
from fto.schemas import Experiment
from fto.schemas.results import ExampleResult, ExperimentResults, ModelRole

Show = Literal["all", "better", "worse", "disagree"]
SHOWS: tuple[Show, ...] = ("all", "better", "worse", "disagree")


@dataclass
class Answer:
    """One model's answer to one example."""

    target: str
    output: str
    scores: dict[str, float]
    versus_base: str = ""  # "better", "worse" or "same" (fine-tuned models, on the first scorer)


@dataclass
class ExampleRow:
    """One eval example across every model."""

    line: int | None
    prompt: str
    reference: str
    answers: list[Answer]
    kinds: set[str] = field(default_factory=set)  # the filters it passes besides "all"


@dataclass
class ExamplesView:
    """The rows one filter keeps (at most `limit`), with how many there are in all."""

    show: Show
    scorer: str | None
    targets: list[str]
    rows: list[ExampleRow]
    matching: int
    total: int


def _outputs(store: Store, experiment: Experiment, targets: list[str]) -> dict[str, list[ExampleResult]]:
    found = {t: files.load_answers(store, experiment.id, t) for t in targets}
    return {t: rows for t, rows in found.items() if rows is not None}


def _versus(tuned: float, base: float, scorer: str) -> str:
    if not (math.isfinite(tuned) and math.isfinite(base)) or tuned == base:
        return "same"
    better = tuned < base if lower_is_better(scorer) else tuned > base
    return "better" if better else "worse"


def example_rows(
    store: Store, experiment: Experiment, results: ExperimentResults, show: Show = "all", limit: int = 200
) -> ExamplesView:
    """The examples that `show` keeps: fine-tuned better or worse than base, or models disagreeing (their first
    scorer's values differ), judged on the first scorer."""
    outputs = _outputs(store, experiment, [m.label for m in results.models])
    scorer = results.scorers[0] if results.scorers else None
    if not outputs:
        return ExamplesView(show, scorer, [], [], 0, 0)
    bases = {m.label: base.label for m in results.models if (base := results.base_of(m)) and base.label in outputs
             and m.target.role == ModelRole.FINE_TUNED}  # fmt: skip
    count = min(len(rows) for rows in outputs.values())
    kept: list[ExampleRow] = []
    matching = 0
    for i in range(count):
        first = next(iter(outputs.values()))[i]
        answers = [Answer(t, rows[i].output, rows[i].scores) for t, rows in outputs.items()]
        row = ExampleRow(first.line, first.prompt, first.reference or "", answers)
        if scorer:
            by_target = {a.target: a.scores.get(scorer, math.nan) for a in answers}
            for answer in answers:
                base_label = bases.get(answer.target)
                if base_label is not None:
                    answer.versus_base = _versus(by_target[answer.target], by_target[base_label], scorer)
                    row.kinds.add(answer.versus_base)
            if len({v for v in by_target.values() if math.isfinite(v)}) > 1:
                row.kinds.add("disagree")
        if show == "all" or show in row.kinds:
            matching += 1
            if len(kept) < limit:
                kept.append(row)
    return ExamplesView(show, scorer, list(outputs), kept, matching, count)
