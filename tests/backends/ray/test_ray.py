"""The ray backend on a real Ray head (127.0.0.1, 2 CPUs): DDP on 2 workers trains like `local`, sweeps run as
one experiment, a killed worker fails the job with its cause and `fto resume` finishes it, a GPU job on a CPU
cluster is unschedulable at once, and a stopped head is a clear status with nothing lost."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from fto.orchestrator.store import Store
from fto.schemas import JobStatus
from tests.conftest import ANIMALS, FTO, run_fto

pytestmark = pytest.mark.slow  # real training on a real Ray cluster


def _job(tmp_path: Path, head, rows: int = 64, epochs: int = 2, storage: str | None = None, **ray) -> Path:
    (tmp_path / "train.jsonl").write_text("".join(ANIMALS.read_text().splitlines(keepends=True)[:rows]))
    spec = {
        "name": "on-ray",
        "data": {"train": "train.jsonl", "validation": 0.25},
        "hyperparameters": {"epochs": epochs, "batch_size": 8, "learning_rate": 3e-3},
        "backends": {
            "ray": {
                "address": head.address,
                "storage_path": storage or str(tmp_path / "storage"),
                "num_workers": 2,
                **ray,
            },
            "local": {"model": "embedded:tiny-llama"},
        },
        "eval": {"scorers": ["exact_match"], "max_examples": 8, "max_new_tokens": 4, "train_sample": 0},
        "check": {"enabled": False},
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def wait_for(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s"
        time.sleep(0.25)


def _losses(store: Store, job_id: str) -> list[tuple[int, float]]:
    return [(m.step, m.loss) for m in store.metrics(job_id) if m.loss is not None]


@pytest.mark.timeout(500)
def test_a_sweep_of_three_learning_rates_on_ray_and_on_local_is_one_experiment(ray_head, tmp_path, s3):
    job = _job(tmp_path, ray_head, rows=48, epochs=2, num_workers=1, storage=s3)  # models go to S3, eval fetches them
    spec = yaml.safe_load(job.read_text())
    spec["hyperparameters"]["learning_rate"] = [1e-3, 3e-3, 1e-2]
    job.write_text(yaml.safe_dump(spec))
    result = run_fto("run", str(job), "--backend", "ray,local", timeout=480)
    assert result.returncode == 0, result.stdout + result.stderr
    store = Store()
    [experiment] = store.experiments()
    jobs = store.jobs(experiment.id)
    assert sorted(j.backend for j in jobs) == sorted(
        f"{b}@learning_rate={lr}" for b in ("ray", "local") for lr in ("0.001", "0.003", "0.01")
    )
    rankings = {r["backend"]: r for r in json.loads(run_fto("compare", "--json").stdout)["sweep"]}
    assert set(rankings) == {"ray", "local"}
    tuned = [j.fine_tuned_model or "" for j in jobs if j.backend.startswith("ray@")]
    assert all(model.startswith(f"{s3}/job-") and model.endswith("/adapter") for model in tuned)
    for ranking in rankings.values():
        assert [p["rank"] for p in ranking["points"]] == [1, 2, 3]
        assert sorted(p["values"]["learning_rate"] for p in ranking["points"]) == [1e-3, 3e-3, 1e-2]

    def spans(backend: str) -> list[tuple[float, float]]:
        found = []
        for j in jobs:
            if j.backend.startswith(backend):
                worked = [e.created_at.timestamp() for e in store.events(j.id)  # from building the model to the end
                          if not e.message.startswith(("queued", "submitted", "learning curve"))]  # fmt: skip
                found.append((min(worked), max(worked)))
        return sorted(found)

    ray_spans, local_spans = spans("ray@"), spans("local@")
    assert any(a[1] > b[0] for a, b in itertools.pairwise(ray_spans)), "the cluster's 2 CPUs train 2 points at once"
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(local_spans)), "local trains one point at a time"


def _training_workers() -> list[int]:
    found = subprocess.run(["pgrep", "-f", "ray::RayTrainWorker"], capture_output=True, text=True).stdout.split()
    return [int(pid) for pid in found]


@pytest.mark.timeout(500)
def test_two_ddp_workers_train_like_local_and_a_killed_worker_is_resumed_to_the_same_curve(ray_head, tmp_path, s3):
    """2 workers (DDP, gloo) against `local` with one process at the same batch: the same loss curve, through a
    worker killed mid-run (the job fails with Ray's cause) and `fto resume` from the checkpoint in S3; then the
    adapter, fetched from S3, is evaluated like any other."""
    job = _job(tmp_path, ray_head, rows=96, epochs=3, checkpoint_every=4, storage=s3)  # resume fetches from S3
    result = run_fto("submit", str(job), "--backend", "ray,local")
    assert result.returncode == 0, result.stdout + result.stderr
    store = Store()
    [experiment] = store.experiments()
    jobs = {j.backend: j for j in store.jobs(experiment.id)}
    ray_job = jobs["ray"].id
    poller = subprocess.Popen([*FTO, "wait", experiment.id], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: any(e.message.startswith("checkpoint") for e in store.events(ray_job)), timeout=240)
        workers = _training_workers()
        assert len(workers) == 2
        os.kill(workers[-1], signal.SIGKILL)
        wait_for(lambda: store.job(ray_job).status.terminal, timeout=120)
    finally:
        poller.wait(timeout=300)
    failed = store.job(ray_job)
    assert failed.status == JobStatus.FAILED
    # the dead worker's own error, or (when Ray saw the survivor fail first) gloo's, which names the crash
    said = ("died", "Died", "exited", "SIGKILL", "unexpected", "remote worker crashing")
    assert failed.error and any(word in failed.error for word in said), failed.error
    assert store.job(jobs["local"].id).status == JobStatus.SUCCEEDED
    resumed = run_fto("resume", ray_job, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert store.job(ray_job).status == JobStatus.SUCCEEDED
    assert any(e.message.startswith("resumed from step-") for e in store.events(ray_job))
    ray_losses, local_losses = _losses(store, ray_job), _losses(store, jobs["local"].id)
    assert [s for s, _ in ray_losses] == [s for s, _ in local_losses] and len(ray_losses) == 27
    # 1e-3: the frozen weights multiply in bf16 on this CPU (precision.py), rounded per micro-batch shape
    assert [loss for _, loss in ray_losses] == pytest.approx([loss for _, loss in local_losses], rel=1e-3)
    assert (store.job(ray_job).fine_tuned_model or "").startswith(f"{s3}/{ray_job}/")
    assert run_fto("eval", experiment.id, timeout=300).returncode == 0
    scores = {m["target"]["label"] for m in json.loads(run_fto("compare", "--json").stdout)["models"]}
    assert {"ray/base", "ray/fine-tuned", "local/base", "local/fine-tuned"} <= scores
    raw = run_fto("logs", ray_job, "--raw")  # Ray's own log, both attempts
    assert raw.returncode == 0 and f"fto-{ray_job}-1" in raw.stdout and f"fto-{ray_job}-2" in raw.stdout


@pytest.mark.timeout(200)
def test_cancel_stops_the_ray_job_and_the_job_ends_cancelled(ray_head, tmp_path):
    job = _job(tmp_path, ray_head, rows=96, epochs=20, num_workers=1)
    assert run_fto("submit", str(job), "--backend", "ray").returncode == 0
    store = Store()
    [ray_job] = store.jobs(store.experiments()[0].id)
    poller = subprocess.Popen([*FTO, "wait", ray_job.id], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: store.job(ray_job.id).status == JobStatus.RUNNING, timeout=120)
        assert run_fto("cancel", ray_job.id).returncode == 0
        wait_for(lambda: store.job(ray_job.id).status.terminal, timeout=60)
    finally:
        poller.wait(timeout=60)
    assert store.job(ray_job.id).status == JobStatus.CANCELLED
    from ray.job_submission import JobSubmissionClient

    assert str(JobSubmissionClient(ray_head.address).get_job_status(f"fto-{ray_job.id}-1")) == "STOPPED"
    assert len(_losses(store, ray_job.id)) < 20 * 9  # stopped well before its last step


@pytest.mark.timeout(120)
@pytest.mark.parametrize("workers", [1, 2])  # one: the driver trains, held PENDING by Ray; two: Ray Train's workers
def test_a_gpu_job_on_a_cpu_cluster_is_unschedulable_at_once(ray_head, tmp_path, workers):
    started = time.monotonic()
    job = _job(tmp_path, ray_head, use_gpu=True, num_workers=workers)
    result = run_fto("run", str(job), "--backend", "ray", timeout=100)
    assert result.returncode == 1
    [job] = Store().jobs(Store().experiments()[0].id)
    assert job.status == JobStatus.FAILED and job.error and job.error.startswith("unschedulable:")
    assert "GPU: 1" in job.error and "CPU: 2" in job.error  # what it asked, and what the cluster has
    assert time.monotonic() - started < 60


@pytest.mark.timeout(400)
def test_a_stopped_head_is_a_clear_status_and_nothing_is_lost(ray_head, tmp_path):
    # long enough that it is still training when the head stops, however fast this machine is
    job = _job(tmp_path, ray_head, rows=96, epochs=60, num_workers=1, checkpoint_every=4)
    assert run_fto("submit", str(job), "--backend", "ray").returncode == 0
    store = Store()
    [experiment] = store.experiments()
    [ray_job] = store.jobs(experiment.id)
    poller = subprocess.Popen([*FTO, "wait", experiment.id], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(store.metrics(ray_job.id)) >= 3, timeout=240)
        ray_head.stop()
        assert poller.wait(timeout=240) == 1
    finally:
        poller.kill()
        ray_head.start()  # for the tests after this one
    lost = store.job(ray_job.id)
    assert lost.status == JobStatus.FAILED and lost.error and "cannot reach the Ray head" in lost.error
    assert len(store.metrics(ray_job.id)) >= 3 and store.events(ray_job.id)  # what was recorded is still there
    checkpoints = list((tmp_path / "storage" / ray_job.id / "checkpoints").glob("step-*.pt"))
    assert checkpoints, "the checkpoints are in storage_path, for `fto resume` on the head's return"
