"""The openai backend through the real openai SDK against `fto serve` on 127.0.0.1: a real local fine-tune,
end to end, then chat completions from the fine-tuned model, and the same job file on `--backend local`."""

from __future__ import annotations

import json

import openai
import pytest

from fto.backends import registry
from fto.orchestrator.store import Store
from fto.schemas import BackendSection, JobSpec, JobStatus
from tests.backends.local.jobs import wait_for
from tests.conftest import ANIMALS, models_by_label, run_fto
from tests.serving import ServeProcess

pytestmark = pytest.mark.slow  # real fine-tunes through fto serve


@pytest.fixture
def server(tmp_path):
    started = ServeProcess(tmp_path / "serve-home")
    yield started
    started.stop()


def _job(write_job, url: str, **overrides):
    return write_job(
        {
            "backends": {
                "local": {"model": "embedded:tiny-llama"},
                "openai": {"model": "embedded:tiny-llama", "base_url": url},
            },
            "eval": {"scorers": ["exact_match", "token_f1"]},
            **overrides,
        }
    )


def test_same_job_file_runs_on_openai_and_local(server, write_job, fto_home):
    job_file = _job(write_job, server.url)
    hosted = run_fto("run", str(job_file), "--backend", "openai", timeout=400)
    assert hosted.returncode == 0, hosted.stdout + hosted.stderr
    local = run_fto("run", str(job_file), "--backend", "local", timeout=400)
    assert local.returncode == 0, local.stdout + local.stderr

    store = Store()
    by_backend = {j.backend: j for e in store.experiments() for j in store.jobs(e.id)}
    tuned = by_backend["openai"]
    assert tuned.status == JobStatus.SUCCEEDED
    assert tuned.fine_tuned_model and tuned.fine_tuned_model.startswith("ft:embedded:tiny-llama:fto-serve:quickstart:")
    losses = [m.loss for m in store.metrics(tuned.id)]
    assert len(losses) > 20 and losses[-1] < losses[0] / 2  # metrics came through the events API
    messages = [e.message for e in store.events(tuned.id)]
    assert any("learning_rate is for local training" in m for m in messages)  # ignored, and said so
    assert any(m.startswith("checkpoint at step") for m in messages)
    assert len(messages) == len(set(messages))  # the events cursor: nothing recorded twice

    scores = {}
    for experiment in store.experiments():
        for row in store.scores(experiment.id):
            scores[(row["target"], row["scorer"])] = row["score"]
    assert scores[("openai/fine-tuned", "exact_match")] >= 0.8
    assert scores[("openai/base", "exact_match")] <= 0.1
    assert scores[("local/fine-tuned", "exact_match")] >= 0.8
    usage = json.loads((fto_home / "experiments" / tuned.experiment_id / "eval" / "usage.json").read_text())
    assert usage["openai/fine-tuned"]["input_tokens"] > 0 and usage["openai/fine-tuned"]["output_tokens"] > 0

    # local and hosted side by side: the hosted fine-tuned model as an extra target of the local experiment
    local_experiment = by_backend["local"].experiment_id
    both = run_fto("eval", local_experiment, "--target", f"openai:{tuned.fine_tuned_model}", timeout=300)
    assert both.returncode == 0, both.stdout + both.stderr
    compared = json.loads(run_fto("compare", local_experiment, "--json").stdout)
    targets = models_by_label(compared)
    assert {"local/base", "local/fine-tuned", f"openai/{tuned.fine_tuned_model}"} <= set(targets)
    assert targets[f"openai/{tuned.fine_tuned_model}"]["scores"]["exact_match"]["value"] >= 0.8


def test_backend_calls_find_pause_resume_and_large_uploads(server, tmp_path, monkeypatch):
    spec = JobSpec.model_validate(
        {
            "name": "calls",
            "data": {"train": str(ANIMALS)},
            "hyperparameters": {"epochs": 50},
            "backends": {"openai": {"model": "embedded:tiny-llama", "base_url": server.url}},
        }
    )
    section = BackendSection.model_validate({**spec.backends["openai"].model_dump(), "uploads_above_bytes": 1000,
                                             "part_bytes": 30000})  # fmt: skip
    backend = registry.create("openai", section)
    from fto.orchestrator.data.load import load_splits

    data = load_splits(spec)
    prepared = backend.prepare(spec, data.train, data.validation, tmp_path / "prepared")
    uploaded = backend.upload(prepared)  # several parts through the Uploads API
    client = openai.OpenAI(base_url=server.url, api_key="unused")
    assert client.files.content(uploaded.train_file).content == prepared.train.read_bytes()

    assert backend.find("job-x") is None
    provider_id = backend.submit(spec, uploaded, "job-x")
    sent = client.fine_tuning.jobs.retrieve(provider_id)
    assert sent.method.supervised.hyperparameters.n_epochs == 50
    assert sent.method.supervised.hyperparameters.learning_rate_multiplier == "auto"  # passed through
    assert sent.metadata == {"fto_job_id": "job-x"}
    assert backend.find("job-x") == provider_id  # how a crashed submit learns the job exists
    wait_for(backend, provider_id, {JobStatus.RUNNING})
    backend.pause(provider_id)
    assert backend.get(provider_id).status == JobStatus.PAUSED
    first = backend.updates(provider_id, None)
    backend.resume(provider_id)
    assert backend.get(provider_id).status in (JobStatus.QUEUED, JobStatus.VALIDATING, JobStatus.RUNNING)
    wait_for(backend, provider_id, {JobStatus.RUNNING})
    backend.cancel(provider_id)
    assert wait_for(backend, provider_id).status == JobStatus.CANCELLED
    later = backend.updates(provider_id, first.cursor)
    assert later.events and not {e.data["id"] for e in later.events} & {e.data["id"] for e in first.events}
    assert [c.step for c in first.checkpoints + later.checkpoints] == sorted(
        c.step for c in first.checkpoints + later.checkpoints
    )


def test_out_of_range_hyperparameters_are_refused_before_any_upload(server, write_job):
    job_file = _job(write_job, server.url, hyperparameters={"epochs": 60, "learning_rate": None})
    result = run_fto("submit", str(job_file), "--backend", "openai", timeout=120)
    assert result.returncode != 0
    assert "epochs = 60 is outside OpenAI's range 1–50" in result.stderr + result.stdout
    assert openai.OpenAI(base_url=server.url, api_key="unused").files.list().data == []


def test_the_azure_variant_fine_tunes_and_queries_through_azure_paths(tmp_path, monkeypatch):
    """AzureOpenAI's client (api-key header, /openai/... paths, chat by deployment) against fto serve."""
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "azure-key-for-test")
    server = ServeProcess(tmp_path / "azure-home", env={"FTO_SERVE_API_KEY": "azure-key-for-test"})
    try:
        spec = JobSpec.model_validate(
            {"name": "azure", "data": {"train": str(ANIMALS)}, "hyperparameters": {"epochs": 2}}
        )
        section = BackendSection.model_validate(
            {"model": "embedded:tiny-llama", "azure_endpoint": server.url.removesuffix("/v1"),
             "api_key_env": "AZURE_OPENAI_API_KEY"}
        )  # fmt: skip
        backend = registry.create("openai", section)
        backend.check(spec)
        from fto.orchestrator.data.load import load_splits

        data = load_splits(spec)
        uploaded = backend.upload(backend.prepare(spec, data.train, data.validation, tmp_path / "prepared"))
        job_id = backend.submit(spec, uploaded, "job-azure")
        state = wait_for(backend, job_id)
        assert state.status == JobStatus.SUCCEEDED, state.error
        from fto.backends.base import GenerationParams
        from fto.schemas import Message

        reply = backend.complete(
            state.fine_tuned_model, [Message(role="user", content="What class is a dog?")], GenerationParams()
        )
        assert reply.text and reply.output_tokens
    finally:
        server.stop()
