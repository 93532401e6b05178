"""Vertex AI reinforcement tuning through the real google-genai SDK against the loopback Vertex (every request and
answer checked against google-genai's types; the RL examples read from the Cloud Storage emulator as
ReinforcementTuningExample): string_check graders as string-match rewards, a weighted multi grader as a composite
reward, and what Vertex cannot express refused in one line before any upload."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fto.orchestrator.errors import UnsupportedError
from fto.schemas import JobSpec, JobStatus
from tests.backends.local.jobs import submit, wait_for
from tests.backends.vertex.test_vertex import _backend
from tests.conftest import ANIMALS
from tests.rewards import ANSWER

pytestmark = pytest.mark.slow  # against servers

EXACT = {**ANSWER, "name": "exact", "operation": "eq"}
MULTI = {"name": "reward", "type": "multi", "calculate_output": "0.25 * exact + 0.75 * answer",
         "graders": {"exact": EXACT, "answer": ANSWER}}  # fmt: skip


def _spec(grader: dict[str, Any], **rft: Any) -> JobSpec:
    return JobSpec.model_validate(
        {"name": "rft", "method": "rft", "data": {"train": str(ANIMALS), "validation": 0.1}, "graders": [grader],
         "rft": {"grader": grader["name"], **rft}, "hyperparameters": {"epochs": 2}}
    )  # fmt: skip


@pytest.mark.timeout(180)
def test_a_weighted_multi_grader_becomes_a_composite_reward(vertex_api, gcs, tmp_path):
    spec = _spec(MULTI, samples_per_prompt=4, max_new_tokens=32, reasoning_effort="low", eval_interval=5)
    backend = _backend(vertex_api)
    job_id = submit(backend, spec, tmp_path / "prepared", "job-rft")
    assert wait_for(backend, job_id).status == JobStatus.SUCCEEDED
    assert vertex_api.violations == []

    [created] = vertex_api.jobs.values()
    sent = created["body"]["reinforcementTuningSpec"]
    assert sent["hyperParameters"] == {"epochCount": 2, "samplesPerPrompt": 4, "maxOutputTokens": 32,
                                       "evaluateInterval": 5, "thinkingLevel": "LOW"}  # fmt: skip
    parts = {p["rewardConfig"]["rewardName"]: p for p in sent["compositeRewardConfig"]["weightedRewardConfigs"]}
    assert {name: p["weight"] for name, p in parts.items()} == {"exact": 0.25, "answer": 0.75}
    scorer = parts["answer"]["rewardConfig"]["stringMatchRewardScorer"]  # the SDK sends it with proto names
    assert scorer == {"string_match_expression": {"match_operation": "REGEX_CONTAINS",
                      "expression": "(?i){{references.reference}}"}, "correct_answer_reward": 1.0,
                      "wrong_answer_reward": 0.0}  # fmt: skip
    row = json.loads(created["training"].decode().splitlines()[0])  # what Vertex read: the prompt and references
    assert row["contents"][-1]["role"] == "user" and row["references"]["reference"] in (
        "mammal",
        "bird",
        "reptile",
        "fish",
        "amphibian",
        "insect",
    )


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("grader", "message"),
    [
        ({**ANSWER, "operation": "eq", "input": "{{ item.reference }}"}, "input must be {{ sample.output_text }}"),
        ({**MULTI, "calculate_output": "min(exact, answer)"}, "must be a weighted sum of its parts"),
        (
            {"name": "code", "type": "python", "source": "def grade(sample, item):\n    return 1.0\n"},
            "cannot run grader 'code' (python) as an RFT reward",
        ),
    ],
    ids=["input", "formula", "python"],
)
def test_what_vertex_cannot_express_is_refused_before_upload(vertex_api, grader, message):
    with pytest.raises(UnsupportedError) as refused:
        _backend(vertex_api).check(_spec(grader))
    assert message in str(refused.value)
    assert vertex_api.jobs == {}
