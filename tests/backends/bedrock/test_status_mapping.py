"""Bedrock statuses that moto never reaches (its jobs stay InProgress), from GetModelCustomizationJob responses
recorded in the shape of the API reference, one per stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fto.backends import registry
from fto.schemas import BackendSection, JobStatus

RECORDED = sorted((Path(__file__).parent / "recorded").glob("*.json"))


@pytest.mark.parametrize("path", RECORDED, ids=[p.stem for p in RECORDED])
def test_recorded_responses_map_to_our_statuses(path):
    case = json.loads(path.read_text())
    backend = registry.create("anthropic", BackendSection.model_validate({"s3_bucket": "b", "role_arn": "r"}))
    state = backend._state(case["response"])
    assert state.status == JobStatus(case["expected"])
    if state.status == JobStatus.SUCCEEDED:
        assert state.fine_tuned_model == case["response"]["outputModelArn"]
    else:
        assert state.fine_tuned_model is None
    if state.status == JobStatus.FAILED:
        assert "messages must alternate" in (state.error or "")


def test_every_bedrock_status_is_covered():
    seen = {json.loads(p.read_text())["response"]["status"] for p in RECORDED}
    assert seen == {"InProgress", "Completed", "Failed", "Stopping", "Stopped"}
