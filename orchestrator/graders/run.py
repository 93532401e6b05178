"""Grade answers with a grader: one value per sample, or the reason it has none (never a failed run)."""

from __future__ import annotations

import json
import math
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from fto.orchestrator.graders import formula, templates, text
from fto.orchestrator.store import Store
from fto.schemas import Conversation, Message
from fto.schemas.graders import (
    Grader,
    LabelModelGrader,
    MultiGrader,
    PythonGrader,
    ScoreModelGrader,
    StringCheckGrader,
    TextSimilarityGrader,
)


@dataclass
class Grade:
    """One sample's value (None when the grader could not give one, with the reason), and a multi grader's parts."""

    value: float | None
    error: str | None = None
    parts: dict[str, float] = field(default_factory=dict)

    def passed(self, threshold: float | None) -> float | None:
        """1.0 at or above the threshold, 0.0 below, None without a value or a threshold."""
        return None if self.value is None or threshold is None else float(self.value >= threshold)


def item_of(example: Conversation) -> dict[str, Any]:
    """What `{{ item.* }}` reads: the dataset row (its messages and any other fields it had), and `reference`, the
    reference answer (the last assistant turn), for rows that carry no fields of their own."""
    row: dict[str, Any] = {"messages": [m.model_dump(exclude_none=True) for m in example.messages]}
    row.update((example.metadata or {}).get("fields") or {})
    with suppress(ValueError):  # a prompt-only row (an RFT dataset): the grader reads its own fields
        row.setdefault("reference", example.prompt_and_reference()[1].content or "")
    return row


def sample_of(output: str) -> dict[str, Any]:
    """What `{{ sample.* }}` reads: the answer as text, and as JSON when it parses."""
    try:
        parsed = json.loads(output)
    except (json.JSONDecodeError, ValueError):
        parsed = None
    return {"output_text": output, "output_json": parsed}


def grade_many(
    grader: Grader, samples: list[dict[str, Any]], items: list[dict[str, Any]], store: Store | None = None
) -> list[Grade]:
    """The grader on each (sample, item) pair."""
    if isinstance(grader, StringCheckGrader | TextSimilarityGrader):
        return [_text(grader, s, i) for s, i in zip(samples, items, strict=True)]
    if isinstance(grader, PythonGrader):
        from fto.orchestrator.graders.sandbox import PythonSandbox

        sandbox = PythonSandbox(grader.source, grader.timeout_seconds, grader.memory_mb)
        try:
            return [Grade(*sandbox.grade(s, i)) for s, i in zip(samples, items, strict=True)]
        finally:
            sandbox.close()
    if isinstance(grader, ScoreModelGrader | LabelModelGrader):
        return _model(grader, samples, items, store)
    return _multi(grader, samples, items, store)


def _text(grader: StringCheckGrader | TextSimilarityGrader, sample: dict[str, Any], item: dict[str, Any]) -> Grade:
    try:
        given = templates.render(grader.input, item, sample)
        reference = templates.render(grader.reference, item, sample)
    except templates.TemplateProblem as exc:
        return Grade(None, str(exc))
    if isinstance(grader, StringCheckGrader):
        return Grade(text.string_check(grader.operation, given, reference))
    return Grade(text.similarity(grader.evaluation_metric, given, reference))


def _model(
    grader: ScoreModelGrader | LabelModelGrader, samples: list[dict[str, Any]], items: list[dict[str, Any]],
    store: Store | None,
) -> list[Grade]:  # fmt: skip
    from fto.orchestrator.graders.model import ModelGrading, read_label, read_score

    grades: list[Grade | None] = []
    asked: list[list[Message]] = []
    for sample, item in zip(samples, items, strict=True):
        try:
            rendered = [(m.role, templates.render(m.content, item, sample)) for m in grader.input]
            asked.append([Message(role="system" if r == "developer" else r, content=c) for r, c in rendered])
            grades.append(None)
        except templates.TemplateProblem as exc:
            grades.append(Grade(None, str(exc)))
    replies = iter(ModelGrading(grader, store).answers(asked))
    read = read_score if isinstance(grader, ScoreModelGrader) else read_label
    return [g if g is not None else Grade(*read(grader, next(replies))) for g in grades]  # type: ignore[arg-type]


def _multi(
    grader: MultiGrader, samples: list[dict[str, Any]], items: list[dict[str, Any]], store: Store | None
) -> list[Grade]:
    by_part = {name: grade_many(part, samples, items, store) for name, part in grader.graders.items()}
    out = []
    for k in range(len(samples)):
        parts = {name: grades[k] for name, grades in by_part.items()}
        failed = next(((name, g.error) for name, g in parts.items() if g.value is None), None)
        if failed:
            out.append(Grade(None, f"{failed[0]}: {failed[1]}"))
            continue
        values = {name: g.value for name, g in parts.items() if g.value is not None}
        try:
            value = formula.evaluate(grader.calculate_output, values)
        except formula.FormulaProblem as exc:
            out.append(Grade(None, str(exc), values))
            continue
        out.append(Grade(value if math.isfinite(value) else None, None if math.isfinite(value) else
                         f"calculate_output gave {value}", values))  # fmt: skip
    return out
