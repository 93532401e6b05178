"""The `nebius` backend through the openai SDK against a loopback Nebius Token Factory checked against OpenAI's
spec with Nebius's documented hyperparameters: end to end with eval, LoRA settings in Nebius's names, limits
refused before upload, faults and a lost create answer."""

from __future__ import annotations

import pytest

from fto.backends import registry
from fto.orchestrator.errors import UnsupportedError
from fto.orchestrator.store import Store
from fto.schemas import BackendSection, JobSpec, JobStatus
from tests.backends.conftest import NEBIUS_KEY
from tests.backends.local.jobs import submit
from tests.conftest import ANIMALS, run_fto

pytestmark = pytest.mark.timeout(300)


def _spec(**fields) -> JobSpec:
    return JobSpec.model_validate({"name": "nebius", "data": {"train": str(ANIMALS)}, **fields})


def test_run_end_to_end_with_eval(nebius_api, write_job, fto_home):
    job_file = write_job({"backends": {"nebius": nebius_api.section},
                          "eval": {"scorers": ["exact_match"], "max_examples": 10}})  # fmt: skip
    result = run_fto("run", str(job_file), "--backend", "nebius", timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "migrate" not in result.stdout + result.stderr  # OpenAI's closing notice is OpenAI's alone
    store = Store()
    [experiment] = store.experiments()
    [job] = store.jobs(experiment.id)
    assert job.status == JobStatus.SUCCEEDED
    scores = {(row["target"], row["scorer"]): row["score"] for row in store.scores(experiment.id)}
    assert scores[("nebius/fine-tuned", "exact_match")] >= 0.5 > scores[("nebius/base", "exact_match")]
    for path in fto_home.rglob("*"):
        assert not path.is_file() or NEBIUS_KEY.encode() not in path.read_bytes(), path


def test_lora_and_learning_rate_go_in_nebius_names(nebius_api, tmp_path):
    spec = _spec(hyperparameters={"epochs": 2, "batch_size": 8, "learning_rate": 2e-5, "max_seq_length": 4096,
                                  "lora": {"r": 32, "alpha": 64, "dropout": 0.05}})  # fmt: skip
    backend = registry.create("nebius", BackendSection.model_validate(nebius_api.section))
    job_id = submit(backend, spec, tmp_path, "job-lora")
    sent = nebius_api.jobs[job_id].request["method"]["supervised"]["hyperparameters"]
    assert sent == {"lora": True, "packing": True, "warmup_ratio": 0.1, "weight_decay": 0.0, "max_grad_norm": 1.0,
                    "n_epochs": 2, "batch_size": 8, "learning_rate": 2e-5, "context_length": 4096,
                    "lora_r": 32, "lora_alpha": 64.0, "lora_dropout": 0.05}  # fmt: skip


@pytest.mark.parametrize(
    ("section", "hyperparameters", "message"),
    [
        ({}, {"epochs": 30}, "epochs = 30 is outside Nebius's range 1–20"),
        ({"model": "meta-llama/Llama-3.3-70B-Instruct", "lora": False}, {}, "LoRA only"),
    ],
)
def test_limits_are_refused_before_upload(nebius_api, section, hyperparameters, message):
    backend = registry.create("nebius", BackendSection.model_validate({**nebius_api.section, **section}))
    with pytest.raises(UnsupportedError, match=message):
        backend.check(_spec(hyperparameters=hyperparameters))
    assert not nebius_api.files


def test_faults_and_a_lost_create_make_exactly_one_job(nebius_api, write_job, fto_home):
    nebius_api.faults.add("POST", "/v1/fine_tuning/jobs", "429")
    nebius_api.faults.add("POST", "/v1/fine_tuning/jobs", "lost")
    nebius_api.faults.add("GET", "/v1/fine_tuning/jobs/.*", "503")
    job_file = write_job({"backends": {"nebius": nebius_api.section}, "eval": None})
    result = run_fto("run", str(job_file), "--backend", "nebius", timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(nebius_api.jobs) == 1
    assert [f.kind for f in nebius_api.faults.seen] == ["429", "lost", "503"]


def test_stats_for_nebius(fto_home):
    result = run_fto("data", "stats", str(ANIMALS), "--for", "nebius")
    assert result.returncode == 0, result.stderr
    assert "Nebius Token Factory" in result.stdout and "131,072-token limit" in result.stdout
