"""What makes a grader unusable before it grades anything: a template that does not parse, or a multi grader's
formula that names what it does not have. The job file and `fto grade` ask the same questions."""

from __future__ import annotations

from fto.orchestrator.graders import formula, templates
from fto.schemas.graders import Grader, LabelModelGrader, MultiGrader, ScoreModelGrader


def problem(grader: Grader) -> tuple[str, str] | None:
    """(field, why) for the first thing wrong with the grader (its parts', for a multi grader), or None."""
    texts = {key: getattr(grader, key) for key in ("input", "reference") if isinstance(getattr(grader, key, None), str)}
    if isinstance(grader, ScoreModelGrader | LabelModelGrader):
        texts = {f"input[{i}].content": m.content for i, m in enumerate(grader.input)}
    for key, text in texts.items():
        found = templates.check(text)
        if found:
            return key, f"template does not parse: {found}"
    if isinstance(grader, MultiGrader):
        for name, part in grader.graders.items():
            inner = problem(part)
            if inner:
                return f"graders.{name}.{inner[0]}", inner[1]
        try:
            formula.evaluate(grader.calculate_output, {name: 0.5 for name in grader.graders})
        except formula.FormulaProblem as exc:
            return "calculate_output", str(exc)
    return None
