"""The `fireworks` backend through the real `fireworks-ai` SDK against a loopback Fireworks on 127.0.0.1 whose
every request and answer is checked against the SDK's own types: datasets (one request, or a signed URL for large
files), supervised and DPO jobs under fto's id, the JOB_STATE_* lifecycle, cancel and resume, faults, and eval on a
named deployment."""

from __future__ import annotations

import json

import pytest

from fto.backends import registry
from fto.orchestrator.data.load import load_splits
from fto.orchestrator.errors import UnsupportedError
from fto.orchestrator.store import Store
from fto.schemas import BackendSection, JobSpec, JobStatus
from tests.backends.conftest import FIREWORKS_KEY as KEY
from tests.backends.local.jobs import wait_for
from tests.conftest import ANIMALS, run_fto

pytestmark = pytest.mark.slow  # the CLI end to end, against a server


def _section(api, **options):
    return {"base_url": api.base_url, "account_id": "acct", "deployment": "accounts/acct/deployments/d1", **options}


def _job(write_job, api, **options):
    return write_job({"backends": {"fireworks": _section(api, **options)}, "eval": {"scorers": ["exact_match"]}})


def _backend(api, **options):
    return registry.create("fireworks", BackendSection.model_validate(_section(api, **options)))


def test_run_end_to_end_under_ftos_job_id_with_eval_on_the_deployment(fireworks_api, write_job, fto_home):
    result = run_fto("run", str(_job(write_job, fireworks_api)), "--backend", "fireworks", timeout=200)
    assert result.returncode == 0, result.stdout + result.stderr

    store = Store()
    [experiment] = store.experiments()
    [job] = store.jobs(experiment.id)
    assert job.status == JobStatus.SUCCEEDED
    assert job.provider_job_id == f"accounts/acct/supervisedFineTuningJobs/{job.id}"  # our id is Fireworks' id
    assert job.fine_tuned_model == f"accounts/acct/models/quickstart-{job.id}"
    sent = fireworks_api.jobs[job.provider_job_id]["body"]
    assert sent["baseModel"] == "accounts/fireworks/models/llama-v3p1-8b-instruct"
    assert sent["epochs"] == 8 and sent["batchSizeSamples"] == 16 and sent["loraRank"] == 16
    assert sent["evaluationDataset"].startswith("accounts/acct/datasets/fto-")
    assert fireworks_api.uploaded == ["request", "request"]  # train and validation, each one request

    assert [m.step for m in store.metrics(job.id)] == [0, 33, 67, 100]
    messages = [e.message for e in store.events(job.id)]
    assert messages[-1].startswith("checkpoint at step 100: accounts/acct/models/quickstart-")
    assert any(m.startswith("JOB_STATE_RUNNING") for m in messages) and len(messages) == len(set(messages))
    scores = {(row["target"], row["scorer"]): row["score"] for row in store.scores(experiment.id)}
    assert scores[("fireworks/fine-tuned", "exact_match")] >= 0.4  # queried as MODEL#DEPLOYMENT
    assert scores[("fireworks/base", "exact_match")] <= 0.1
    for path in fto_home.rglob("*"):  # the key reached Fireworks and nowhere else
        assert not path.is_file() or KEY.encode() not in path.read_bytes(), path


def test_same_data_is_one_dataset_and_large_files_go_through_a_signed_url(fireworks_api, tmp_path):
    spec = JobSpec.model_validate({"name": "u", "data": {"train": str(ANIMALS), "validation": None}})
    backend = _backend(fireworks_api, uploads_above_bytes=1000)
    data = load_splits(spec)
    prepared = backend.prepare(spec, data.train, [], tmp_path)
    first = backend.upload(prepared)
    assert fireworks_api.uploaded == ["signed-url"]
    assert backend.upload(prepared) == first and fireworks_api.uploaded == ["signed-url"]  # READY: not again
    assert backend.has_files(first)
    dataset_id = first.train_file.rsplit("/", 1)[-1]
    assert fireworks_api.datasets[dataset_id]["content"] == prepared.train.read_bytes()


def test_dpo_jobs_resume_and_cancel(fireworks_api, tmp_path):
    rows = []
    for line in ANIMALS.read_text().splitlines()[:20]:
        messages = json.loads(line)["messages"]
        wrong = "fish" if messages[-1]["content"] != "fish" else "bird"
        rows.append({"input": {"messages": messages[:-1]}, "preferred_output": [messages[-1]],
                     "non_preferred_output": [{"role": "assistant", "content": wrong}]})  # fmt: skip
    (tmp_path / "prefs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = JobSpec.model_validate({"name": "p", "method": "dpo", "data": {"train": str(tmp_path / "prefs.jsonl"),
                                   "validation": None}, "hyperparameters": {"beta": 0.1}})  # fmt: skip
    backend = _backend(fireworks_api)
    backend.check(spec)
    data = load_splits(spec)
    uploaded = backend.upload(backend.prepare(spec, data.train, [], tmp_path / "p"))
    name = backend.submit(spec, uploaded, "job-dpo1")
    assert name == "accounts/acct/dpoJobs/job-dpo1" and backend.find("job-dpo1") == name
    assert backend.submit(spec, uploaded, "job-dpo1") == name and len(fireworks_api.jobs) == 1  # never twice
    sent = fireworks_api.jobs[name]["body"]
    assert sent["lossConfig"] == {"method": "DPO", "dpo": {"beta": 0.1}}
    assert sent["trainingConfig"]["baseModel"] == "accounts/fireworks/models/llama-v3p1-8b-instruct"
    wait_for(backend, name, {JobStatus.RUNNING})
    backend.cancel(name)
    assert wait_for(backend, name).status == JobStatus.CANCELLED
    backend.resume(name)
    assert wait_for(backend, name).status == JobStatus.SUCCEEDED


def test_faults_and_a_job_fireworks_fails(fireworks_api, write_job):
    faults = fireworks_api.faults
    faults.add("POST", r"/v1/accounts/acct/datasets", "429")
    faults.add("POST", r"/v1/accounts/acct/supervisedFineTuningJobs", "lost")  # made; the answer was lost
    faults.add("GET", r"/v1/accounts/acct/supervisedFineTuningJobs/.*", "503")
    faults.add("GET", r"/v1/accounts/acct/supervisedFineTuningJobs/.*", "slow", seconds=3)
    fireworks_api.fail_next_job = "dataset row 12: messages must alternate"
    result = run_fto("run", str(_job(write_job, fireworks_api, timeout=1)), "--backend", "fireworks", timeout=200)
    assert result.returncode != 0
    assert not faults.pending and len(fireworks_api.jobs) == 1  # the retried create met the first job
    [job] = [j for e in Store().experiments() for j in Store().jobs(e.id)]
    assert job.status == JobStatus.FAILED
    assert "dataset row 12: messages must alternate" in run_fto("status", job.id, "--json").stdout


def test_refusals_before_upload(fireworks_api, write_job):
    job = write_job({"hyperparameters": {"lora": {"r": 12}}, "backends": {"fireworks": _section(fireworks_api)}})
    result = run_fto("submit", str(job), "--backend", "fireworks", timeout=60)
    assert result.returncode != 0 and "Fireworks takes a LoRA rank of 4, 8, 16, 32, 64" in result.stderr
    assert not fireworks_api.datasets
    backend = _backend(fireworks_api, deployment=None)
    with pytest.raises(UnsupportedError, match="only on an on-demand deployment"):
        backend.inference_model("accounts/acct/models/tuned")
