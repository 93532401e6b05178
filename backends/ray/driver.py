"""A Ray job's entrypoint: check that the cluster can ever run the job, then train it with Ray Train.

Ray Train's TorchTrainer starts `num_workers` processes, sets up their process group (gloo on CPU, NCCL on GPU)
and runs `train_loop` in each: fto's local trainer, unchanged (DDP, or FSDP with shard: true). Run by the Jobs
API in the job's working_dir, which holds fto-job.json and the training data.
"""

from __future__ import annotations

import json
import math
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from fto.backends.ray.reports import Reporter

JOB_FILE = "fto-job.json"


def worker_resources(job: dict[str, Any]) -> dict[str, float]:
    """What one training worker asks the cluster for."""
    asked = dict(job.get("resources_per_worker") or {})
    asked.setdefault("CPU", 1.0)
    if job.get("use_gpu"):
        asked.setdefault("GPU", 1.0)
    return asked


def single_process(job: dict[str, Any]) -> bool:
    """Whether the driver trains by itself: one worker, nothing to shard."""
    return int(job["num_workers"]) == 1 and not job["options"].get("shard")


def unschedulable(asked: dict[str, float], workers: int, nodes: list[dict[str, float]]) -> str | None:
    """Why `workers` workers of `asked` each can never be placed on these nodes' total resources (None: they can)."""
    fit = 0
    for node in nodes:
        fit += min((math.floor(node.get(name, 0.0) / amount) for name, amount in asked.items() if amount > 0),
                   default=workers)  # fmt: skip
    if fit >= workers:
        return None
    totals: dict[str, float] = {}
    for node in nodes:
        for name, amount in node.items():
            if name in ("CPU", "GPU", "memory") or name in asked:
                totals[name] = totals.get(name, 0.0) + amount
    has = ", ".join(f"{k}: {_amount(v)}" for k, v in sorted(totals.items()) if k != "memory") or "nothing"
    wants = ", ".join(f"{k}: {_amount(v)}" for k, v in sorted(asked.items()))
    return (
        f"unschedulable: the job asks for {workers} worker(s) with {{{wants}}} each, and the cluster has "
        f"{{{has}}} in all ({fit} such worker(s) fit); lower num_workers or resources_per_worker, or add nodes"
    )


def _amount(value: float) -> str:
    return f"{value:g}"


def train_loop(config: dict[str, Any]) -> None:
    """One training process: fto's local trainer on this worker's share, rank 0 reporting."""
    import ray

    from fto.backends.local import worker
    from fto.backends.ray.folder import RayFolder

    rank_zero = int(os.environ.get("RANK", "0")) == 0
    reporter = Reporter("rank0" if rank_zero else "rank")
    folder = RayFolder(config["storage_path"], config["job_id"], reporter, f"attempt-{config['attempt']}")
    data = config["data"] if isinstance(config["data"], dict) else ray.get(config["data"])
    for name, text in data.items():  # every process writes the same bytes: no process waits on another
        _write(folder.path / name, text)
    _write(folder.config, json.dumps({**config["config"], "train_file": str(folder.path / "train.jsonl"),
        "validation_file": str(folder.path / "validation.jsonl") if "validation.jsonl" in data else None}))  # fmt: skip
    if config["resume"]:
        import torch.distributed as dist

        if int(os.environ.get("LOCAL_RANK", "0")) == 0:
            folder.restore()  # one process per node fetches the checkpoints; the others wait for it
        if dist.is_initialized():
            dist.barrier()
    if not rank_zero:
        folder.reporter = _Silent()
    try:
        worker.run(folder, config["resume"])
        _done(folder)
    except BaseException as exc:
        if rank_zero:
            message = f"{type(exc).__name__}: {exc}"
            folder.event(message, level="error")
            folder.write_status(_failed(), error=message)
        raise


def _done(folder: Any) -> None:
    """With an object store, everything is published: the node's copy goes once every process is through."""
    import shutil

    import torch.distributed as dist

    if folder.url is None:
        return
    if dist.is_initialized():
        dist.barrier()
    if int(os.environ.get("LOCAL_RANK", "0")) == 0:
        shutil.rmtree(folder.path, ignore_errors=True)


class _Silent(Reporter):
    def __init__(self) -> None:
        super().__init__("quiet")

    def report(self, kind: str, body: dict[str, Any]) -> None:
        """Only rank 0 reports."""


def _failed() -> Any:
    from fto.schemas import JobStatus

    return JobStatus.FAILED


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def main() -> None:
    """The entrypoint: report unschedulable jobs at once, else train and report how it ended."""
    reporter = Reporter("driver")
    job = json.loads(Path(JOB_FILE).read_text())
    data = {name: Path(name).read_text() for name in ("train.jsonl", "validation.jsonl") if Path(name).exists()}
    config = {"job_id": job["job_id"], "storage_path": job["storage_path"], "resume": job["resume"],
              "attempt": job["attempt"], "config": {"spec": job["spec"], "options": job["options"]}}  # fmt: skip
    if single_process(job):
        # One worker: this driver trains, on the resources the Jobs API reserved for it (the job is PENDING until
        # they are free); no Ray Train controller or worker group to start.
        try:
            train_loop({**config, "data": data})
        except BaseException:
            traceback.print_exc()
            sys.exit(1)
        return
    try:
        import ray
        from ray.train import FailureConfig, RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer

        ray.init(log_to_driver=True)
        asked, workers = worker_resources(job), int(job["num_workers"])
        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        problem = unschedulable(asked, workers, nodes)
        if problem:
            reporter.report("status", {"status": "failed", "error": problem})
            sys.exit(1)
        free = ray.available_resources()
        if unschedulable(asked, workers, [free]):
            wants = ", ".join(f"{k}: {v:g}" for k, v in asked.items())
            reporter.report("event", {"message": f"waiting for the cluster: {workers} worker(s) with {{{wants}}} "
                                      "each do not fit in what is free now", "level": "warning",
                                      "created_at": _now()})  # fmt: skip
        trainer = TorchTrainer(
            train_loop,
            train_loop_config={**config, "data": ray.put(data)},
            scaling_config=ScalingConfig(
                num_workers=workers, use_gpu=bool(job.get("use_gpu")), resources_per_worker=asked
            ),
            run_config=RunConfig(
                name=f"fto-{job['job_id']}",
                storage_path=_train_storage(job["storage_path"]),
                failure_config=FailureConfig(max_failures=0),  # a dead worker fails the job; `fto resume` continues
            ),
        )
        trainer.fit()
    except SystemExit:
        raise
    except BaseException as exc:
        traceback.print_exc()
        reporter.report("status", {"status": "failed", "error": failure_cause(exc)})
        sys.exit(1)


def _train_storage(storage_path: str) -> str:
    """Ray Train's own run files go beside the jobs' folders."""
    if "://" in storage_path:
        return storage_path.rstrip("/") + "/ray-train"
    return str(Path(storage_path).expanduser().resolve() / "ray-train")


def failure_cause(exc: BaseException) -> str:
    """The root of a training failure, in one line (Ray wraps a worker's error in its own)."""
    failures = list(getattr(exc, "worker_failures", {}).values())
    if failures:  # a worker's death comes first: its peers' errors (gloo's closed connection) follow from it
        deaths = [f for f in failures if "HealthCheck" in type(f).__name__ or "ActorDied" in type(f).__name__]
        exc = (deaths or failures)[0]
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}"


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat()


if __name__ == "__main__":
    main()
