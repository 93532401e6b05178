"""The local backend for real: a detached worker trains the embedded tiny Llama; we watch it like a provider."""

import os
import signal
import time

import pytest

from fto.backends import registry
from fto.backends.local.folder import JobFolder
from fto.orchestrator.data.load import read_dataset
from fto.schemas import BackendSection, JobSpec, JobStatus
from tests.backends.local.jobs import start, wait_for
from tests.conftest import ANIMALS

pytestmark = pytest.mark.slow  # trains models

ROWS = read_dataset(str(ANIMALS))


def _spec(epochs: int, **local: str) -> JobSpec:
    return JobSpec.model_validate(
        {
            "name": "t",
            "data": {"train": str(ANIMALS)},
            "seed": 0,
            "hyperparameters": {"epochs": epochs, "batch_size": 16, "learning_rate": 3e-3},
            "backends": {"local": {"threads": 1, **local}},
        }
    )


def _start(tmp_path, spec: JobSpec, train=ROWS[:200], validation=ROWS[200:240]):
    return start(tmp_path, spec, train, validation)


def _folder(backend, job_id) -> JobFolder:
    return JobFolder(backend.root / "jobs" / job_id)


def test_a_real_training_run_reports_status_events_and_falling_loss(tmp_path):
    backend, job_id = _start(tmp_path, _spec(epochs=6))
    state = wait_for(backend, job_id, {JobStatus.SUCCEEDED, JobStatus.FAILED})
    assert state.status == JobStatus.SUCCEEDED, state.error
    assert os.path.isfile(os.path.join(state.fine_tuned_model, "adapter_model.safetensors"))
    assert os.path.isfile(os.path.join(state.base_model, "config.json"))
    assert state.trained_tokens == 6 * 2 * 200  # one class word and the end token per example, per epoch

    updates = backend.updates(job_id, None)
    steps = [m.step for m in updates.metrics]
    assert steps == list(range(1, 6 * 13 + 1))  # ceil(200 / 16) = 13 steps per epoch
    assert all(m.total_steps == 78 for m in updates.metrics)
    assert updates.metrics[-1].loss < updates.metrics[0].loss / 4
    assert [m.step for m in updates.metrics if m.valid_loss is not None] == [13, 26, 39, 52, 65, 78]
    assert any("training 200 examples for 6 epochs" in e.message for e in updates.events)
    assert backend.updates(job_id, updates.cursor).metrics == []  # nothing is shown twice

    answers = backend.complete_many(
        state.fine_tuned_model, [r.prompt_and_reference()[0] for r in ROWS[240:260]], _params()
    )
    references = [r.prompt_and_reference()[1].content for r in ROWS[240:260]]
    assert sum(a.text == b for a, b in zip(answers, references, strict=True)) >= 14
    assert all(
        a.input_tokens and a.output_tokens and a.output_tokens <= 6 for a in answers
    )  # the base model gets none right


def _params():
    from fto.backends.base import GenerationParams

    return GenerationParams(max_new_tokens=6)


def test_cancel_stops_the_worker_and_records_cancelled(tmp_path):
    backend, job_id = _start(tmp_path, _spec(epochs=500))
    wait_for(backend, job_id, {JobStatus.RUNNING})
    backend.cancel(job_id)
    state = wait_for(backend, job_id, {JobStatus.CANCELLED, JobStatus.FAILED, JobStatus.SUCCEEDED}, timeout=30)
    assert state.status == JobStatus.CANCELLED
    deadline = time.monotonic() + 10
    while _folder(backend, job_id).worker_alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _folder(backend, job_id).worker_alive()


def test_a_worker_that_dies_is_reported_failed_not_left_running(tmp_path):
    backend, job_id = _start(tmp_path, _spec(epochs=500))
    wait_for(backend, job_id, {JobStatus.RUNNING})
    os.kill(_folder(backend, job_id).read_status()["pid"], signal.SIGKILL)
    state = wait_for(backend, job_id, {JobStatus.FAILED, JobStatus.SUCCEEDED}, timeout=10)
    assert state.status == JobStatus.FAILED
    assert "worker process exited unexpectedly" in state.error


def test_a_model_path_that_does_not_exist_is_refused_at_check_and_fails_a_job_that_lost_it(tmp_path):
    from fto.orchestrator.errors import ConfigError

    missing = tmp_path / "no-such-model"
    with pytest.raises(ConfigError, match="no-such-model is neither a model folder"):
        _start(tmp_path, _spec(epochs=1, model=str(missing)))
    # a folder that vanishes between the check and the worker's start: the job fails with the reason
    spec = _spec(epochs=1, model=str(missing))
    backend = registry.create("local", BackendSection.model_validate(spec.backends["local"].model_dump()))
    prepared = backend.prepare(spec, ROWS[:200], ROWS[200:240], tmp_path / "prep")
    job_id = backend.submit(spec, backend.upload(prepared), "job-lost-model")
    state = wait_for(backend, job_id, {JobStatus.FAILED, JobStatus.SUCCEEDED})
    assert state.status == JobStatus.FAILED
    assert "model folder not found" in state.error and "no-such-model" in state.error


def test_submitting_the_same_job_twice_starts_one_worker(tmp_path):
    backend, job_id = _start(tmp_path, _spec(epochs=500))
    first_pid = _folder(backend, job_id).read_status()["pid"]
    spec = _spec(epochs=500)
    prepared = backend.prepare(spec, ROWS[:200], ROWS[200:240], tmp_path / "prep")
    assert backend.submit(spec, backend.upload(prepared), job_id) == job_id
    assert _folder(backend, job_id).read_status()["pid"] == first_pid
    backend.cancel(job_id)
    wait_for(backend, job_id, {JobStatus.CANCELLED, JobStatus.FAILED}, timeout=60)


@pytest.fixture(scope="module")
def tokenizer():
    from fto.backends.local.embedded import build_tokenizer

    return build_tokenizer(m.content or "" for r in ROWS for m in r.messages)


def test_loss_mask_covers_exactly_the_assistant_turns_with_weight_one(tokenizer):
    from fto.backends.local.tokenized import IGNORE, encode

    conversation = {
        "messages": [
            {"role": "system", "content": "Answer with the animal's class."},
            {"role": "user", "content": "I saw an owl."},
            {"role": "assistant", "content": "bird", "weight": 0},
            {"role": "user", "content": "And a shark?"},
            {"role": "assistant", "content": "fish"},
        ]
    }
    encoded = encode(tokenizer, conversation, max_length=512)
    trained = [t for t, label in zip(encoded.input_ids, encoded.labels, strict=True) if label != IGNORE]
    assert all(label in (IGNORE, token) for token, label in zip(encoded.input_ids, encoded.labels, strict=True))
    assert tokenizer.decode(trained) == "fish<|end|>"
