"""The AWS Lambda function that rewards Bedrock reinforcement fine-tuning (Amazon Nova) with an fto grader.

Packaged by reward.py as `lambda_function.py`, beside `grader.json` (the job's grader) and fto's own grader code
(orchestrator/graders/portable.py): the reward Bedrock trains on
is computed by the same code as `fto eval`'s. Bedrock calls it with a batch of sampled conversations, each the
dataset row's fields plus `messages` ending in the model's answer, and reads back one `aggregate_reward_score` per
sample, with `metrics_list` (a multi grader's parts). A sample the grader cannot score gets 0 and the metric
`grader_error` 1: Bedrock has no way to leave a sample out, so the count says how often that happened.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fto.orchestrator.graders.portable import grade, sample_of, text_of

GRADER_FILE = Path(__file__).with_name("grader.json")


def lambda_handler(event: Any, context: Any) -> list[dict[str, Any]]:
    """Bedrock's batch of samples (a list, or {"samples": [...]}) → one reward per sample, in order."""
    grader = json.loads(GRADER_FILE.read_text(encoding="utf-8"))
    samples = event.get("samples", []) if isinstance(event, dict) else event
    return [reward(grader, sample) for sample in samples]


def reward(grader: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """One sample's reward in Bedrock's shape."""
    messages = list(row.get("messages") or [])
    answer = text_of(messages.pop()["content"]) if messages and messages[-1].get("role") == "assistant" else ""
    item = {key: value for key, value in row.items() if key != "id"} | {"messages": messages}
    try:
        value, parts = grade(grader, sample_of(answer), item)
    except Exception as exc:  # the grader's own failure is this sample's, never the batch's
        return {"id": row.get("id"), "aggregate_reward_score": 0.0, "error": f"{type(exc).__name__}: {exc}"[:500],
                "metrics_list": [{"name": "grader_error", "value": 1.0, "type": "Metric"}]}  # fmt: skip
    metrics = [{"name": name, "value": part, "type": "Reward"} for name, part in parts.items()]
    return {"id": row.get("id"), "aggregate_reward_score": value,
            "metrics_list": [*metrics, {"name": "grader_error", "value": 0.0, "type": "Metric"}]}  # fmt: skip
