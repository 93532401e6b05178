"""The local backend's jobs for real: resume after kill -9, DPO, early stopping, merged output, full fine-tuning,
bad settings, and two processes (torchrun, gloo) training like one."""

import json
import os
import signal
import time

import pytest

from fto.backends.local.folder import JobFolder
from fto.orchestrator.data.load import read_dataset
from fto.schemas import JobSpec, JobStatus, Message, PreferencePair
from tests.backends.local.jobs import start, wait_for
from tests.conftest import ANIMALS

pytestmark = pytest.mark.slow  # trains models

ROWS = read_dataset(str(ANIMALS))


def _spec(method="sft", epochs=3, hp=None, **local):
    return JobSpec.model_validate(
        {
            "name": "t",
            "method": method,
            "data": {"train": str(ANIMALS)},
            "seed": 0,
            "hyperparameters": {"epochs": epochs, "batch_size": 16, "learning_rate": 3e-3, **(hp or {})},
            "backends": {"local": {"threads": 1, **local}},
        }
    )


def _losses(backend, job_id):
    by_step = {}
    for m in backend.updates(job_id, None).metrics:
        by_step[m.step] = m.loss  # a resumed run writes the steps after its checkpoint again
    return [by_step[s] for s in sorted(by_step)]


def test_kill_9_then_resume_ends_on_the_same_loss_curve(tmp_path):
    spec = _spec(epochs=10, checkpoint_every=10)
    train, validation = ROWS[:160], ROWS[160:200]
    whole, whole_id = start(tmp_path, spec, train, validation, "job-whole")
    assert wait_for(whole, whole_id).status == JobStatus.SUCCEEDED
    expected = _losses(whole, whole_id)

    backend, job_id = start(tmp_path, spec, train, validation, "job-killed")
    folder = JobFolder(backend.root / "jobs" / job_id)
    deadline = time.monotonic() + 120
    while not any(folder.checkpoints_dir.glob("step-00000020.pt")):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(folder.read_status()["pid"], signal.SIGKILL)
    assert wait_for(backend, job_id).status == JobStatus.FAILED
    backend.resume(job_id)
    assert wait_for(backend, job_id).status == JobStatus.SUCCEEDED
    events = [e.message for e in backend.updates(job_id, None).events]
    assert any(m.startswith("resumed from step-") for m in events)
    assert _losses(backend, job_id) == pytest.approx(expected, rel=1e-6)
    assert len(expected) == 100


def test_cancel_keeps_a_checkpoint_to_resume_from(tmp_path):
    backend, job_id = start(tmp_path, _spec(epochs=400, checkpoint_every=0), ROWS[:64], [])
    wait_for(backend, job_id, {JobStatus.RUNNING})
    time.sleep(1.0)
    backend.cancel(job_id)
    assert wait_for(backend, job_id).status == JobStatus.CANCELLED
    assert list((backend.root / "jobs" / job_id / "checkpoints").glob("step-*.pt"))


def _pairs(rows):
    classes = ["bird", "mammal", "fish", "reptile", "insect"]
    pairs = []
    for r in rows:
        prompt, answer = r.prompt_and_reference()
        wrong = classes[(classes.index(answer.content) + 1) % 5]
        pairs.append(
            PreferencePair(prompt=prompt, chosen=[answer], rejected=[Message(role="assistant", content=wrong)])
        )
    return pairs


def test_dpo_learns_to_prefer_the_chosen_reply_with_the_base_as_reference(tmp_path):
    pairs = _pairs(ROWS[:200])
    backend, job_id = start(tmp_path, _spec(method="dpo", epochs=8, hp={"beta": 0.5}), pairs[:160], pairs[160:])
    state = wait_for(backend, job_id)
    assert state.status == JobStatus.SUCCEEDED, state.error
    metrics = backend.updates(job_id, None).metrics
    assert metrics[0].loss == pytest.approx(0.6931, abs=0.01)  # policy == reference at the start: -log σ(0)
    late = metrics[-10:]
    assert sum(m.loss for m in late) / 10 < 0.35 and sum(m.reward_accuracy for m in late) / 10 > 0.85
    valid = [m.valid_loss for m in metrics if m.valid_loss is not None]
    assert valid[-1] < min(valid[0], 0.6931), valid  # held-out pairs: from chance (or worse) to better than it


def test_dpo_with_full_fine_tuning_is_refused_before_anything_runs(tmp_path):
    from fto.orchestrator.errors import UnsupportedError

    with pytest.raises(UnsupportedError, match="tuning: lora"):
        start(tmp_path, _spec(method="dpo", tuning="full"), _pairs(ROWS[:20]), [])


def test_early_stopping_ends_training_when_validation_stops_improving(tmp_path):
    spec = _spec(epochs=10, hp={"learning_rate": 1e-12}, early_stopping_patience=1)
    backend, job_id = start(tmp_path, spec, ROWS[:64], ROWS[64:96])
    assert wait_for(backend, job_id).status == JobStatus.SUCCEEDED
    update = backend.updates(job_id, None)
    assert max(m.epoch for m in update.metrics) == 2
    assert any("early stopping after epoch 2" in e.message for e in update.events)


def test_merged_model_loads_with_plain_transformers_and_answers_like_the_adapter(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from fto.backends.local.generate import load

    backend, job_id = start(tmp_path, _spec(epochs=2, merge=True), ROWS[:64], [])
    state = wait_for(backend, job_id)
    assert state.status == JobStatus.SUCCEEDED, state.error
    merged_dir = backend.root / "jobs" / job_id / "merged"
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    adapter, _ = load(state.fine_tuned_model, torch.device("cpu"))
    ids = torch.tensor([[5, 9, 14, 20, 33]])
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, adapter(ids).logits, atol=1e-4)
    assert json.loads((merged_dir / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]


def test_full_fine_tuning_saves_a_whole_model(tmp_path):
    backend, job_id = start(tmp_path, _spec(epochs=2, tuning="full", hp={"learning_rate": 1e-3}), ROWS[:64], [])
    state = wait_for(backend, job_id)
    assert state.status == JobStatus.SUCCEEDED, state.error
    assert (
        state.fine_tuned_model.endswith("/model")
        and (backend.root / "jobs" / job_id / "model" / "config.json").exists()
    )
    losses = _losses(backend, job_id)
    assert losses[-1] < losses[0]


@pytest.mark.parametrize(
    ("local", "hp", "message"),
    [
        ({}, {"lora": {"target_modules": ["no_such_proj"]}}, "LoRA target modules ['no_such_proj'] do not fit"),
        ({"tuning": "qlora"}, {}, "QLoRA needs a CUDA GPU and the bitsandbytes package"),
        ({}, {"max_seq_length": 8}, "no example has assistant tokens left"),
        ({}, {"learning_rate": 1.0e30}, "training diverged; lower hyperparameters.learning_rate"),
    ],
)
def test_bad_settings_fail_the_job_with_a_clear_message(tmp_path, local, hp, message):
    backend, job_id = start(tmp_path, _spec(epochs=1, hp=hp, **local), ROWS[:32], [])
    state = wait_for(backend, job_id)
    assert state.status == JobStatus.FAILED and message in state.error


def test_two_processes_on_gloo_train_like_one_at_the_same_global_batch(tmp_path):
    train = ROWS[:96]
    one, one_id = start(tmp_path, _spec(epochs=2, processes=1), train, ROWS[96:128], "job-one")
    two, two_id = start(tmp_path, _spec(epochs=2, processes=2), train, ROWS[96:128], "job-two")
    assert wait_for(one, one_id).status == JobStatus.SUCCEEDED
    state = wait_for(two, two_id)
    assert state.status == JobStatus.SUCCEEDED, state.error
    # 1e-3: the frozen weights multiply in bf16 on this CPU (precision.py), rounded per micro-batch shape
    assert _losses(two, two_id) == pytest.approx(_losses(one, one_id), rel=1e-3)
    valid = lambda b, j: [m.valid_loss for m in b.updates(j, None).metrics if m.valid_loss]  # noqa: E731
    assert valid(two, two_id) == pytest.approx(valid(one, one_id), rel=1e-3)


def test_sharded_training_fsdp_on_two_processes_matches_one_and_saves_a_usable_adapter(tmp_path):
    from fto.backends.base import GenerationParams

    train = ROWS[:96]
    # FSDP's sharded weights always multiply in fp32 (worker.frozen_bf16), so the single process does too
    one, one_id = start(tmp_path, _spec(epochs=2, processes=1, frozen_precision="float32"), train, [], "job-single")
    fsdp, fsdp_id = start(tmp_path, _spec(epochs=2, processes=2, shard=True), train, [], "job-fsdp")
    assert wait_for(one, one_id).status == JobStatus.SUCCEEDED
    state = wait_for(fsdp, fsdp_id)
    assert state.status == JobStatus.SUCCEEDED, state.error
    assert _losses(fsdp, fsdp_id) == pytest.approx(_losses(one, one_id), rel=1e-4)
    prompt = [ROWS[100].prompt_and_reference()[0]]
    params = GenerationParams(max_new_tokens=4)
    assert fsdp.complete_many(state.fine_tuned_model, prompt, params)[0].text == (
        one.complete_many(one.get(one_id).fine_tuned_model, prompt, params)[0].text
    )
