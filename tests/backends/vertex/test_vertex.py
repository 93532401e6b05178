"""The `vertex` backend through the real google-genai SDK (Vertex mode) against a loopback Vertex AI whose every
request and answer is checked against google-genai's own types, with data in Cloud Storage through a real
emulator: Gemini-format data, supervised and preference tuning, labels for `find`, states, checkpoints, cancel,
faults, and generateContent on the tuned endpoint for eval."""

from __future__ import annotations

import json

import pytest

from fto.backends import registry
from fto.orchestrator.data.load import load_splits
from fto.orchestrator.errors import UnsupportedError
from fto.orchestrator.store import Store
from fto.schemas import BackendSection, JobSpec, JobStatus
from tests.backends.conftest import VERTEX_TOKEN as TOKEN
from tests.backends.local.jobs import wait_for
from tests.conftest import ANIMALS, run_fto

pytestmark = pytest.mark.slow  # the CLI end to end, against servers


def _job(write_job, api, **options):
    return write_job({"backends": {"vertex": {**api.section, **options}}, "eval": {"scorers": ["exact_match"]}})


def _backend(api, **options):
    return registry.create("vertex", BackendSection.model_validate({**api.section, **options}))


def test_run_end_to_end_with_gemini_data_in_cloud_storage(vertex_api, gcs, write_job, fto_home):
    result = run_fto("run", str(_job(write_job, vertex_api, adapter_size=4)), "--backend", "vertex", timeout=200)
    assert result.returncode == 0, result.stdout + result.stderr

    store = Store()
    [experiment] = store.experiments()
    [job] = store.jobs(experiment.id)
    assert job.status == JobStatus.SUCCEEDED
    [created] = vertex_api.jobs.values()
    sent = created["body"]
    assert sent["labels"] == {"fto_job_id": job.id}
    assert sent["supervisedTuningSpec"]["hyperParameters"] == {"epochCount": 8, "adapterSize": "ADAPTER_SIZE_FOUR",
                                                               "batchSize": 16}  # fmt: skip
    endpoint_id = created["body"]["name"].rsplit("/", 1)[-1]
    assert job.fine_tuned_model == f"projects/proj/locations/us-central1/endpoints/{endpoint_id}"
    row = json.loads(created["training"].decode().splitlines()[0])  # what Vertex read from Cloud Storage
    assert set(row) == {"systemInstruction", "contents"} and row["contents"][1]["role"] == "model"
    objects = [b.name for b in gcs.list_blobs("tuning-data")]
    assert len(objects) == 2 and all(name.startswith("fto/data/") for name in objects)  # train and validation

    assert [(m.step, m.epoch) for m in store.metrics(job.id)] == [(10, 1.0), (20, 2.0)]
    messages = [e.message for e in store.events(job.id)]
    assert any(m.startswith("Vertex read 425 training examples, 8500 billable tokens") for m in messages)
    assert any(m.startswith("checkpoint at step 20:") for m in messages)
    assert job.trained_tokens == 8500  # Vertex's billable token count
    scores = {(row["target"], row["scorer"]): row["score"] for row in store.scores(experiment.id)}
    assert scores[("vertex/fine-tuned", "exact_match")] >= 0.4
    assert scores[("vertex/base", "exact_match")] <= 0.1
    compared = json.loads(run_fto("compare", experiment.id, "--json").stdout)
    tuned = next(m for m in compared["models"] if m["target"]["label"] == "vertex/fine-tuned")
    assert tuned["usage"]["cost_usd"] > 0
    for path in fto_home.rglob("*"):  # the token reached Vertex and nowhere else
        assert not path.is_file() or TOKEN.encode() not in path.read_bytes(), path


def test_preference_tuning_find_and_cancel(vertex_api, tmp_path):
    rows = []
    for line in ANIMALS.read_text().splitlines()[:20]:
        messages = json.loads(line)["messages"]
        wrong = "fish" if messages[-1]["content"] != "fish" else "bird"
        rows.append({"input": {"messages": messages[:-1]}, "preferred_output": [messages[-1]],
                     "non_preferred_output": [{"role": "assistant", "content": wrong}]})  # fmt: skip
    (tmp_path / "prefs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = JobSpec.model_validate({"name": "p", "method": "dpo", "data": {"train": str(tmp_path / "prefs.jsonl"),
                                   "validation": None}, "hyperparameters": {"beta": 0.2}})  # fmt: skip
    backend = _backend(vertex_api)
    backend.check(spec)
    data = load_splits(spec)
    prepared = backend.prepare(spec, data.train, [], tmp_path / "p")
    row = json.loads(prepared.train.read_text().splitlines()[0])
    assert set(row) == {"system_instruction", "contents", "completions"}
    assert [c["score"] for c in row["completions"]] == [1, 0]
    uploaded = backend.upload(prepared)
    assert backend.upload(prepared) == uploaded and backend.has_files(uploaded)  # one object per content
    name = backend.submit(spec, uploaded, "job-pref1")
    sent = vertex_api.jobs[name.rsplit("/", 1)[-1]]["body"]
    assert sent["preferenceOptimizationSpec"]["hyperParameters"] == {"beta": 0.2}
    assert backend.find("job-pref1") == name and backend.find("job-none") is None
    wait_for(backend, name, {JobStatus.RUNNING})
    backend.cancel(name)
    assert wait_for(backend, name).status == JobStatus.CANCELLED


def test_faults_a_lost_create_and_a_failed_job(vertex_api, write_job):
    faults = vertex_api.faults
    faults.add("POST", r".*/tuningJobs", "lost")  # Vertex made the job; the answer was lost
    faults.add("GET", r".*/tuningJobs/\d+", "429")
    faults.add("GET", r".*/tuningJobs/\d+", "503")
    faults.add("GET", r".*/tuningJobs/\d+", "slow", seconds=3)
    vertex_api.fail_next_job = "Training data row 7: contents must alternate between user and model"
    result = run_fto("run", str(_job(write_job, vertex_api, timeout=1)), "--backend", "vertex", timeout=200)
    assert result.returncode != 0, result.stdout + result.stderr
    assert not faults.pending and len(vertex_api.jobs) == 1  # found by its label, not created twice
    [job] = [j for e in Store().experiments() for j in Store().jobs(e.id)]
    assert job.status == JobStatus.FAILED
    assert "contents must alternate between user and model" in run_fto("status", job.id, "--json").stdout


def test_refused_before_upload(vertex_api, gcs, write_job):
    for overrides, message in (
        ({"adapter_size": None, "bucket": None}, "set bucket in the vertex section"),
        ({}, "adapter size 12: Vertex takes 1, 2, 4, 8, 16, 32"),
    ):
        job = write_job({"hyperparameters": {"lora": {"r": 12}},
                         "backends": {"vertex": {**vertex_api.section, **overrides}}})  # fmt: skip
        result = run_fto("submit", str(job), "--backend", "vertex", timeout=60)
        assert result.returncode != 0 and message in result.stderr, result.stderr
    assert not list(gcs.list_blobs("tuning-data")) and not vertex_api.jobs


OPEN = "meta/llama3_1@llama-3.1-8b-instruct"


@pytest.mark.parametrize(("mode", "sent_mode"), [("lora", "TUNING_MODE_PEFT_ADAPTER"), ("full", "TUNING_MODE_FULL")])
def test_open_models_tune_with_chat_data_a_tuning_mode_and_an_output_uri(vertex_api, tmp_path, mode, sent_mode):
    spec = JobSpec.model_validate({"name": "open", "data": {"train": str(ANIMALS), "validation": 0.1},
                                   "hyperparameters": {"epochs": 2, "learning_rate": 2e-4}})  # fmt: skip
    backend = _backend(vertex_api, model=OPEN, tuning_mode=mode)
    backend.check(spec)
    data = load_splits(spec)
    uploaded = backend.upload(backend.prepare(spec, data.train, data.validation, tmp_path))
    name = backend.submit(spec, uploaded, "job-open")
    sent = vertex_api.jobs[name.rsplit("/", 1)[-1]]["body"]  # valid as google-genai's TuningJob (else a violation)
    assert sent["baseModel"] == OPEN
    assert sent["supervisedTuningSpec"]["tuningMode"] == sent_mode
    assert sent["supervisedTuningSpec"]["hyperParameters"] == {"epochCount": 2, "learningRate": 2e-4}
    assert sent["outputUri"] == "gs://tuning-data/fto/tuned/job-open/"
    row = json.loads(vertex_api.jobs[name.rsplit("/", 1)[-1]]["training"].decode().splitlines()[0])
    assert set(row) == {"messages"}  # chat messages, not Gemini contents
    assert wait_for(backend, name).status == JobStatus.SUCCEEDED


def test_open_models_refuse_what_vertex_does_not_offer_them(vertex_api):
    prefs = JobSpec.model_validate({"name": "p", "method": "dpo", "data": {"train": str(ANIMALS)}})
    with pytest.raises(UnsupportedError, match="supervised tuning only, not dpo"):
        _backend(vertex_api, model=OPEN).check(prefs)
    stats = run_fto("data", "stats", str(ANIMALS), "--for", "vertex", "--model", OPEN)
    assert stats.returncode == 0 and "8,192-token limit" in stats.stdout
