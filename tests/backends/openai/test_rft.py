"""Reinforcement fine-tuning on the openai backend: the request checked against OpenAI's published spec, then a
real RFT job through the openai SDK (and AzureOpenAI's client) against `fto serve`, which runs it as GRPO."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from fto.backends import registry
from fto.backends.openai.mapping import method
from fto.orchestrator.errors import UnsupportedError
from fto.orchestrator.store import Store
from fto.schemas import BackendSection, JobSpec, JobStatus
from tests.backends.local.jobs import submit, wait_for
from tests.conftest import ANIMALS, FIXTURES, run_fto
from tests.openapi import Spec
from tests.rewards import ANSWER, MULTI, SHORT
from tests.serving import ServeProcess

SPEC = Spec(FIXTURES / "openai-openapi" / "openapi-subset.json", base="/v1")
EVERY_KIND = [
    ANSWER,
    SHORT,
    {"name": "close", "type": "text_similarity", "input": "{{ sample.output_text }}",
     "reference": "{{ item.reference }}", "evaluation_metric": "rouge_l"},
    {"name": "judge", "type": "score_model", "provider": "openai", "model": "o4-mini-2025-04-16", "range": [0, 1],
     "input": [{"role": "user", "content": "Score {{ sample.output_text }} against {{ item.reference }}"}]},
]  # fmt: skip
LABEL = {"name": "label", "type": "label_model", "provider": "openai", "model": "gpt-4.1-mini-2025-04-14",
     "labels": ["right", "wrong"], "passing_labels": ["right"],
     "input": [{"role": "user", "content": "Is {{ sample.output_text }} {{ item.reference }}?"}]}  # fmt: skip


def _spec(grader: dict[str, Any], **rft: Any) -> JobSpec:
    return JobSpec.model_validate(
        {"name": "rft", "method": "rft", "data": {"train": str(ANIMALS)}, "graders": [grader],
         "rft": {"grader": grader["name"], **rft}, "hyperparameters": {"epochs": 2, "batch_size": 8}}
    )  # fmt: skip


def _as_the_service_takes_it() -> Spec:
    """The spec's GraderMulti says `graders` is one grader, and its own example shows a list; the service (and
    OpenAI's cookbook) takes a map of named graders (openai/openai-java#647, openai/openai-python#3918). The spec
    a multi grader is checked against is the published one with that one field corrected."""
    corrected = Spec(FIXTURES / "openai-openapi" / "openapi-subset.json", base="/v1")
    multi = corrected.document["components"]["schemas"]["GraderMulti"]
    multi["properties"]["graders"] = {"type": "object", "additionalProperties": multi["properties"]["graders"]}
    return corrected


CORRECTED = _as_the_service_takes_it()


@pytest.mark.parametrize("grader", EVERY_KIND, ids=lambda g: g["type"])
def test_each_grader_compiles_to_a_reinforcement_method_the_spec_accepts(grader):
    spec = _spec(grader, reasoning_effort="low", eval_interval=5, compute_multiplier=2.0)
    compiled = method(spec, "openai")
    assert compiled["type"] == "reinforcement" and compiled["reinforcement"]["grader"]["name"] == grader["name"]
    hyper = compiled["reinforcement"]["hyperparameters"]
    assert hyper["reasoning_effort"] == "low" and hyper["eval_interval"] == 5 and hyper["n_epochs"] == 2
    body = {"model": "o4-mini-2025-04-16", "training_file": "file-abc", "method": compiled}
    assert SPEC.request_errors("post", "/v1/fine_tuning/jobs", body) == []


def test_a_multi_grader_compiles_to_named_parts():
    multi = {**MULTI, "graders": {**MULTI["graders"], "label": LABEL}, "calculate_output": "short + answer + label"}
    compiled = method(_spec(multi), "openai")["reinforcement"]["grader"]
    assert set(compiled["graders"]) == {"short", "answer", "label"}
    assert CORRECTED.errors({"$ref": "#/components/schemas/GraderMulti"}, compiled) == []
    assert SPEC.errors({"$ref": "#/components/schemas/GraderMulti"}, compiled)  # the spec as published: wrong


def test_what_openai_cannot_run_is_refused_before_anything_is_sent(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-never-sent")
    backend = registry.create("openai", BackendSection(model="o4-mini-2025-04-16"))
    elsewhere = {**EVERY_KIND[3], "provider": "anthropic", "model": "claude-haiku-4-5"}
    with pytest.raises(UnsupportedError, match="OpenAI runs RFT graders on its own models"):
        backend.check(_spec(elsewhere))
    with pytest.raises(UnsupportedError, match=r"cannot run grader 'label' \(label_model\) as an RFT reward"):
        backend.check(_spec(LABEL))  # only inside a multi grader
    with pytest.raises(UnsupportedError, match=r"runs RFT on o4-mini-2025-04-16, not gpt-4\.1-mini"):
        registry.create("openai", BackendSection(model="gpt-4.1-mini-2025-04-14")).check(_spec(ANSWER))
    backend.check(_spec(ANSWER))  # the model OpenAI offers RFT on, with a grader it runs


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_rft_through_the_sdk_against_fto_serve(tmp_path, write_job, fto_home):
    server = ServeProcess(tmp_path / "serve-home")
    try:
        train = tmp_path / "animals.jsonl"
        train.write_text("\n".join(ANIMALS.read_text().splitlines()[:48]) + "\n")
        job_file = write_job(
            {"method": "rft", "graders": [MULTI], "data": {"train": str(train)},
             "rft": {"grader": "reward", "samples_per_prompt": 4, "max_new_tokens": 8, "reasoning_effort": "low"},
             "hyperparameters": {"epochs": 1, "batch_size": 8},
             "backends": {"openai": {"model": "embedded:tiny-llama", "base_url": server.url}},
             "eval": {"scorers": ["reward"], "max_examples": 8, "max_new_tokens": 8}}
        )  # fmt: skip
        result = run_fto("run", str(job_file), "--backend", "openai", timeout=500)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

        (job,) = [j for e in Store().experiments() for j in Store().jobs(e.id)]
        assert job.status == JobStatus.SUCCEEDED and job.fine_tuned_model
        rewards = [m.reward for m in Store().metrics(job.id) if m.reward is not None]
        assert len(rewards) == 6 and all(0.0 <= r <= 1.0 for r in rewards)  # one per step, through the events API

        # What fto serve recorded is what was sent: the grader with its named parts, OpenAI's hyperparameters.
        raw = httpx.get(f"{server.url}/fine_tuning/jobs/{job.provider_job_id}", timeout=10).json()
        assert CORRECTED.response_errors("get", f"/v1/fine_tuning/jobs/{raw['id']}", 200, raw) == []
        section = raw["method"]["reinforcement"]
        assert section["grader"]["graders"]["short"]["source"] == SHORT["source"]
        assert section["hyperparameters"]["reasoning_effort"] == "low"

        # A grader fto serve cannot run is refused with OpenAI's error shape, naming the parameter.
        client = openai.OpenAI(base_url=server.url, api_key="unused")
        uploaded = client.files.create(file=train.open("rb"), purpose="fine-tune")
        bad = {**ANSWER, "operation": "sounds_like"}
        with pytest.raises(openai.BadRequestError) as refused:
            client.fine_tuning.jobs.create(
                model="embedded:tiny-llama", training_file=uploaded.id,
                method={"type": "reinforcement", "reinforcement": {"grader": bad}},  # type: ignore[typeddict-item]
            )  # fmt: skip
        assert refused.value.body["param"] == "method.reinforcement.grader"  # type: ignore[index]
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_rft_through_the_azure_client(tmp_path, monkeypatch):
    """AzureOpenAI's client (api-key header, /openai/... paths) sends the same reinforcement method."""
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "azure-key-for-test")
    server = ServeProcess(tmp_path / "azure-home", env={"FTO_SERVE_API_KEY": "azure-key-for-test"})
    try:
        train = tmp_path / "animals.jsonl"
        train.write_text("\n".join(ANIMALS.read_text().splitlines()[:24]) + "\n")
        spec = _spec(ANSWER, samples_per_prompt=4, max_new_tokens=8)
        spec = spec.model_copy(update={"data": spec.data.model_copy(update={"train": str(train)})})
        section = BackendSection.model_validate(
            {"model": "embedded:tiny-llama", "azure_endpoint": server.url.removesuffix("/v1"),
             "api_key_env": "AZURE_OPENAI_API_KEY"}
        )  # fmt: skip
        backend = registry.create("openai", section)
        job_id = submit(backend, spec, tmp_path / "prepared", "job-azure-rft")
        state = wait_for(backend, job_id)
        assert state.status == JobStatus.SUCCEEDED, state.error
        raw = httpx.get(f"{server.url}/fine_tuning/jobs/{job_id}", headers={"api-key": "azure-key-for-test"}).json()
        assert raw["method"]["reinforcement"]["grader"] == {k: v for k, v in ANSWER.items()}
    finally:
        server.stop()
