"""The entry of the Fireworks evaluator that rewards an RFT job with an fto grader (`main.py` of its code).

Fireworks calls `evaluate` with a sampled conversation, the row's `ground_truth` and its other fields as keyword
arguments, and reads `score` (and `metrics`, a multi grader's parts). The grading is fto's own code, carried
beside this file (orchestrator/graders/portable.py). A sample the grader cannot score gets 0 with the reason:
Fireworks has no way to leave a sample out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fto.orchestrator.graders.portable import grade, sample_of, text_of

GRADER_FILE = Path(__file__).with_name("grader.json")


def evaluate(messages: list[dict[str, Any]], ground_truth: Any = None, **fields: Any) -> dict[str, Any]:
    """One sampled conversation (ending with the model's answer) → its reward."""
    grader = json.loads(GRADER_FILE.read_text(encoding="utf-8"))
    prompt = list(messages)
    answer = text_of(prompt.pop().get("content")) if prompt and prompt[-1].get("role") == "assistant" else ""
    item = {**fields, "messages": prompt}
    if ground_truth is not None:
        item.setdefault("reference", ground_truth)
    try:
        value, parts = grade(grader, sample_of(answer), item)
    except Exception as exc:  # the grader's own failure is this sample's, never the job's
        return {"score": 0.0, "reason": f"grader error: {type(exc).__name__}: {exc}"[:500], "is_score_valid": False}
    metrics = {name: {"score": part, "reason": name} for name, part in parts.items()}
    return {"score": value, "reason": f"{grader['name']} = {value:g}", "metrics": metrics}
