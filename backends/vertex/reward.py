"""fto's reward grader as Vertex AI reinforcement tuning's reward config. Pure: SDK types in, SDK types out.

A `string_check` on the answer becomes a string-match reward: `eq` an exact match, `ne` the same with the rewards
swapped, `like` a partial match, `ilike` a case-blind regular expression; `{{ item.FIELD }}` in the reference
becomes Vertex's `{{references.FIELD}}`, filled from the row's `references` (fields written by format.py). A
`multi` grader whose `calculate_output` is a weighted sum of its parts (`0.5 * a + 0.5 * b`) becomes a composite
reward. Anything else is refused in one line, naming what stands in the way. Vertex clips rewards to [-1, 1].
"""

from __future__ import annotations

import ast
import re
from typing import Any

from fto.orchestrator.errors import UnsupportedError
from fto.schemas.graders import Grader, MultiGrader, StringCheckGrader

ANSWER = re.compile(r"^\{\{\s*sample\.output_text\s*\}\}$")
FIELD = re.compile(r"\{\{\s*item\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
OPERATIONS = {"eq": ("EXACT_MATCH", 1.0, 0.0), "ne": ("EXACT_MATCH", 0.0, 1.0), "like": ("PARTIAL_MATCH", 1.0, 0.0),
              "ilike": ("REGEX_CONTAINS", 1.0, 0.0)}  # fmt: skip


def reward_config(grader: Grader, backend: str) -> dict[str, Any]:
    """`reward_config` (one reward) or `composite_reward_config` (weighted parts) for CreateTuningJobConfig."""
    from google.genai import types

    if isinstance(grader, MultiGrader):
        weights = _weighted_sum(grader, backend)
        parts = [
            types.CompositeReinforcementTuningRewardConfigWeightedRewardConfig(
                reward_config=_single(grader.graders[name], backend), weight=weight
            )
            for name, weight in weights.items()
        ]
        return {"composite_reward_config": types.CompositeReinforcementTuningRewardConfig(
            weighted_reward_configs=parts)}  # fmt: skip
    return {"reward_config": _single(grader, backend)}


def _single(grader: Grader, backend: str) -> Any:
    from google.genai import types

    if not isinstance(grader, StringCheckGrader):
        raise UnsupportedError(f"grader {grader.name!r} ({grader.type}): fto compiles string_check graders (and "
                               "weighted sums of them) to Vertex rewards", backend=backend)  # fmt: skip
    if not ANSWER.match(grader.input):
        raise UnsupportedError(f"grader {grader.name!r}: Vertex matches the answer itself, so input must be "
                               f"{{{{ sample.output_text }}}}, not {grader.input!r}", backend=backend)  # fmt: skip
    if "{{" in FIELD.sub("", grader.reference):
        raise UnsupportedError(f"grader {grader.name!r}: a Vertex reference may use {{{{ item.FIELD }}}} only, not "
                               f"{grader.reference!r}", backend=backend)  # fmt: skip
    operation, right, wrong = OPERATIONS[grader.operation]
    expression = FIELD.sub(lambda m: "{{references." + m.group(1) + "}}", grader.reference)
    if grader.operation == "ilike":
        expression = "(?i)" + expression
    return types.SingleReinforcementTuningRewardConfig(
        reward_name=grader.name,
        string_match_reward_scorer=types.ReinforcementTuningStringMatchRewardScorer(
            string_match_expression=types.ReinforcementTuningStringMatchRewardScorerStringMatchExpression(
                match_operation=types.MatchOperation(operation), expression=expression
            ),
            correct_answer_reward=right,
            wrong_answer_reward=wrong,
        ),
    )


def _weighted_sum(grader: MultiGrader, backend: str) -> dict[str, float]:
    """`w1 * a + w2 * b + …` (or `a + b`) as {part: weight}; any other formula is refused."""
    weights: dict[str, float] = {}

    def term(node: ast.expr) -> None:
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            term(node.left)
            term(node.right)
        elif isinstance(node, ast.Name) and node.id in grader.graders:
            weights[node.id] = weights.get(node.id, 0.0) + 1.0
        elif (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult) and isinstance(node.left, ast.Constant)
              and isinstance(node.left.value, int | float) and isinstance(node.right, ast.Name)
              and node.right.id in grader.graders):  # fmt: skip
            weights[node.right.id] = weights.get(node.right.id, 0.0) + float(node.left.value)
        else:
            raise UnsupportedError(
                f"multi grader {grader.name!r}: Vertex combines rewards by weights, so calculate_output must be a "
                f"weighted sum of its parts (like 0.5 * a + 0.5 * b), not {grader.calculate_output!r}",
                backend=backend,
            )

    try:
        term(ast.parse(grader.calculate_output, mode="eval").body)
    except SyntaxError:
        raise UnsupportedError(
            f"multi grader {grader.name!r}: calculate_output does not parse", backend=backend
        ) from None
    return weights
