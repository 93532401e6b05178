"""`calculate_output` of a multi grader: arithmetic over the named graders' values, and nothing else."""

from __future__ import annotations

import math

from simpleeval import EvalWithCompoundTypes, InvalidExpression

FUNCTIONS = {"min": min, "max": max, "abs": abs, "sqrt": math.sqrt, "log": math.log, "exp": math.exp,
             "floor": math.floor, "ceil": math.ceil}  # fmt: skip


class FormulaProblem(Exception):
    """A formula that names an unknown grader, uses what is not arithmetic, or cannot be computed."""


def evaluate(formula: str, values: dict[str, float]) -> float:
    """The formula's value with each grader name bound to its value."""
    evaluator = EvalWithCompoundTypes(names=dict(values), functions=FUNCTIONS)
    try:
        return float(evaluator.eval(formula))
    except (InvalidExpression, SyntaxError, TypeError, ValueError, ZeroDivisionError, OverflowError) as exc:
        raise FormulaProblem(f"calculate_output {formula!r}: {exc}") from None
