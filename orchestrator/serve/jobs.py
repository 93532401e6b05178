"""Fine-tuning jobs of `fto serve`: OpenAI's job requests turned into local backend jobs, and their state back.

The local backend does the work (a detached worker per job); this module only translates, and remembers the
request of each job in a small JSON file next to the local job folders.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fto.backends.base import UploadedData
from fto.backends.local import LocalBackend, LocalOptions
from fto.backends.local.folder import JobFolder
from fto.orchestrator.data.validate import require_valid, validate_file
from fto.orchestrator.errors import DataError
from fto.orchestrator.serve.files import FileStore, Invalid, NotFound
from fto.schemas import DataSpec, Hyperparameters, JobSpec, JobStatus

JOB_ID = re.compile(r"^ftjob-[0-9a-f]{24}$")
OPENAI_STATUS = {
    JobStatus.PENDING: "queued",
    JobStatus.VALIDATING: "validating_files",
    JobStatus.QUEUED: "queued",
    JobStatus.RUNNING: "running",
    JobStatus.PAUSED: "paused",
    JobStatus.SUCCEEDED: "succeeded",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "cancelled",
}
ORGANIZATION = "org-fto-serve"
# The ranges OpenAI's API reference gives (FineTuneSupervisedHyperparameters / FineTuneDPOHyperparameters): the
# API fto serve implements, so its own, not the openai backend's.
RANGES: dict[str, tuple[float, float]] = {"batch_size": (1, 256), "n_epochs": (1, 50)}
MAX_BETA = 2.0


class ServeJobs:
    def __init__(self, root: Path, files: FileStore, base_models: Sequence[str], options: dict[str, Any]):
        self.root = root / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)
        self.files = files
        self.base_models = list(base_models)
        self.options = options  # local backend options shared by every job (device, threads, …)
        self.backend = LocalBackend("serve", LocalOptions(**options))

    # requests ---------------------------------------------------------------------------------------

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        model = body.get("model")
        if model not in self.base_models:
            raise Invalid(
                f"Model {model!r} cannot be fine-tuned here; available: {', '.join(self.base_models)}", "model"
            )
        kind, hyper = _method(body)
        fmt = "preference" if kind == "dpo" else "chat"
        train = self._checked_file(body.get("training_file"), "training_file", fmt)
        validation = (
            self._checked_file(body["validation_file"], "validation_file", fmt) if body.get("validation_file") else None
        )
        suffix = body.get("suffix")
        if suffix is not None and (not isinstance(suffix, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", suffix)):
            raise Invalid("suffix must be 1 to 64 letters, digits, '-' or '_'", "suffix")
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise Invalid("metadata must map strings to strings", "metadata")
        seed = body.get("seed")
        if seed is None:
            seed = secrets.randbelow(2**31)
        elif not isinstance(seed, int):
            raise Invalid("seed must be an integer", "seed")
        job_id = f"ftjob-{secrets.token_hex(12)}"
        record = {
            "id": job_id,
            "created_at": int(time.time()),
            "model": model,
            "training_file": body["training_file"],
            "validation_file": body.get("validation_file"),
            "method": {"type": kind, kind: {"hyperparameters": hyper}},
            "suffix": suffix,
            "seed": seed,
            "metadata": metadata or None,
            "paused": False,
        }
        spec = JobSpec(
            name="serve",
            method="dpo" if kind == "dpo" else "sft",
            data=DataSpec(train=str(train), validation=str(validation) if validation else None),
            hyperparameters=_hyperparameters(hyper),
            seed=seed,
            suffix=suffix,
        )
        self._save(record)
        backend = LocalBackend("serve", LocalOptions(**{**self.options, "model": model}))
        backend.submit(
            spec,
            UploadedData(train_file=str(train), validation_file=str(validation) if validation else None),
            job_id,
        )
        return self.view(job_id)

    def _checked_file(self, file_id: Any, param: str, fmt: str) -> Path:
        if not isinstance(file_id, str):
            raise Invalid(f"{param} is required", param)
        try:
            path = self.files.path(file_id)
        except NotFound:
            raise Invalid(f"invalid {param}: no such file {file_id}", param) from None
        try:  # the same checks as `fto data validate`, so a bad line is named now rather than fail the job later
            require_valid(validate_file(path, fmt=fmt))
        except DataError as exc:
            shown = str(exc).replace(str(path), file_id)
            raise Invalid(f"invalid {param}: {shown}", param) from None
        return path

    def record(self, job_id: str) -> dict[str, Any]:
        path = self.root / f"{job_id}.json"
        if not JOB_ID.match(job_id) or not path.is_file():
            raise NotFound(f"No such fine-tuning job: {job_id}")
        return json.loads(path.read_text())

    def _save(self, record: dict[str, Any]) -> None:
        path = self.root / f"{record['id']}.json"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, path)

    def ids(self) -> list[str]:
        found = [(json.loads(p.read_text())["created_at"], p.stem) for p in self.root.glob("ftjob-*.json")]
        return [job_id for _, job_id in sorted(found, reverse=True)]

    # state ------------------------------------------------------------------------------------------

    def view(self, job_id: str) -> dict[str, Any]:
        """The fine_tuning.job object."""
        record = self.record(job_id)
        state = self.backend.get(job_id)
        status = OPENAI_STATUS[state.status]
        if record["paused"] and state.status in (JobStatus.CANCELLED, JobStatus.PAUSED):
            status = "paused"
        finished = self._finished_at(job_id) if state.status.terminal else None
        hyper = record["method"][record["method"]["type"]]["hyperparameters"]
        return {
            "object": "fine_tuning.job",
            "id": job_id,
            "created_at": record["created_at"],
            "error": {"code": "training_failed", "message": state.error, "param": None}
            if state.status == JobStatus.FAILED
            else None,
            "fine_tuned_model": self.model_id(record) if state.status == JobStatus.SUCCEEDED else None,
            "finished_at": finished,
            "hyperparameters": {k: hyper[k] for k in ("n_epochs", "batch_size", "learning_rate_multiplier")},
            "model": record["model"],
            "organization_id": ORGANIZATION,
            "result_files": [],
            "status": status,
            "trained_tokens": state.trained_tokens if state.status == JobStatus.SUCCEEDED else None,
            "training_file": record["training_file"],
            "validation_file": record["validation_file"],
            "integrations": [],
            "seed": record["seed"],
            "estimated_finish": None,
            "method": record["method"],
            "metadata": record["metadata"],
        }

    def _folder(self, job_id: str) -> JobFolder:
        return JobFolder(self.backend.root / "jobs" / job_id)

    def _finished_at(self, job_id: str) -> int:
        status_file = self._folder(job_id).status_file
        return int(status_file.stat().st_mtime) if status_file.exists() else int(time.time())

    def model_id(self, record: dict[str, Any]) -> str:
        return f"ft:{record['model']}:fto-serve:{record['suffix'] or 'fto'}:{record['id'].removeprefix('ftjob-')}"

    def cancel(self, job_id: str) -> dict[str, Any]:
        self.record(job_id)
        if self.backend.get(job_id).status.terminal:
            raise Invalid(f"Job {job_id} has already ended; it cannot be cancelled")
        self.backend.cancel(job_id)
        return self._wait_stopped(job_id)

    def pause(self, job_id: str) -> dict[str, Any]:
        record = self.record(job_id)
        if self.backend.get(job_id).status.terminal:
            raise Invalid(f"Job {job_id} has already ended; it cannot be paused")
        record["paused"] = True
        self._save(record)
        self.backend.cancel(job_id)  # the worker stops at the next step and keeps a checkpoint to resume from
        return self._wait_stopped(job_id)

    def resume(self, job_id: str) -> dict[str, Any]:
        record = self.record(job_id)
        if not record["paused"]:
            raise Invalid(f"Job {job_id} is not paused")
        self._wait_stopped(job_id)
        record["paused"] = False
        self._save(record)
        self.backend.resume(job_id)
        return self.view(job_id)

    def _wait_stopped(self, job_id: str, seconds: float = 30.0) -> dict[str, Any]:
        """Answer once the worker has stopped, so the status the client sees is the one that holds."""
        deadline = time.monotonic() + seconds
        folder = self._folder(job_id)
        while time.monotonic() < deadline and (folder.worker_alive() or not self.backend.get(job_id).status.terminal):
            time.sleep(0.05)
        return self.view(job_id)

    def events(self, job_id: str) -> list[dict[str, Any]]:
        """fine_tuning.job.event objects, newest first, with ids that stay the same from call to call."""
        self.record(job_id)
        updates = self.backend.updates(job_id, None)
        key = job_id.removeprefix("ftjob-")
        out: list[tuple[float, int, dict[str, Any]]] = []
        for n, e in enumerate(updates.events):
            out.append(
                (
                    e.created_at.timestamp(),
                    2 * n,
                    {
                        "object": "fine_tuning.job.event",
                        "id": f"ftevent-{key}-e{n}",
                        "created_at": int(e.created_at.timestamp()),
                        "level": "warn" if e.level == "warning" else e.level,
                        "message": e.message,
                        "type": "message",
                    },
                )
            )
        for n, m in enumerate(updates.metrics):
            created = m.created_at.timestamp() if m.created_at else 0.0  # written by older workers: oldest
            data = {"step": m.step, "total_steps": m.total_steps, "train_loss": m.loss, "valid_loss": m.valid_loss}
            out.append(
                (
                    created,
                    2 * n + 1,
                    {
                        "object": "fine_tuning.job.event",
                        "id": f"ftevent-{key}-m{n}",
                        "created_at": int(created),
                        "level": "info",
                        "message": f"Step {m.step}/{m.total_steps}: training loss={m.loss:.4f}"
                        if m.loss is not None
                        else f"Step {m.step}",
                        "type": "metrics",
                        "data": {k: v for k, v in data.items() if v is not None},
                    },
                )
            )
        out.sort(key=lambda item: (item[0], item[1]), reverse=True)
        return [item[2] for item in out]

    def checkpoints(self, job_id: str) -> list[dict[str, Any]]:
        """Saved training states, newest first; each is a point `resume` can continue from."""
        record = self.record(job_id)
        folder = self._folder(job_id).checkpoints_dir
        losses = {m.step: m for m in self.backend.updates(job_id, None).metrics}
        out = []
        for path in sorted(folder.glob("step-*.pt"), reverse=True) if folder.is_dir() else []:
            step = int(path.stem.removeprefix("step-"))
            metric = losses.get(step)
            metrics: dict[str, float] = {"step": float(step)}
            if metric and metric.loss is not None:
                metrics["train_loss"] = metric.loss
            if metric and metric.valid_loss is not None:
                metrics["valid_loss"] = metric.valid_loss
            out.append(
                {
                    "object": "fine_tuning.job.checkpoint",
                    "id": f"ftckpt_{job_id.removeprefix('ftjob-')}{step:08d}",
                    "created_at": int(path.stat().st_mtime),
                    "fine_tuned_model_checkpoint": f"{self.model_id(record)}:ckpt-step-{step}",
                    "fine_tuning_job_id": job_id,
                    "metrics": metrics,
                    "step_number": step,
                }
            )
        return out

    # models -----------------------------------------------------------------------------------------

    def models(self) -> dict[str, tuple[str | None, int]]:
        """Model id → (local path or None if not built yet, created time): base models, then fine-tuned ones."""
        found: dict[str, tuple[str | None, int]] = {}
        for job_id in self.ids():
            record = self.record(job_id)
            state = self.backend.get(job_id)
            if state.base_model and record["model"] not in found:
                found[record["model"]] = (state.base_model, record["created_at"])
            if state.status == JobStatus.SUCCEEDED and state.fine_tuned_model:
                found[self.model_id(record)] = (state.fine_tuned_model, self._finished_at(job_id))
        for base in self.base_models:
            found.setdefault(base, (None if base.startswith("embedded:") else base, 0))
        return found


def _method(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The method and its hyperparameters, from `method` or the older top-level `hyperparameters`."""
    method = body.get("method") or {
        "type": "supervised",
        "supervised": {"hyperparameters": body.get("hyperparameters")},
    }
    if not isinstance(method, dict):
        raise Invalid('method must be an object, such as {"type": "supervised"}', "method")
    kind = method.get("type")
    if kind not in ("supervised", "dpo"):
        raise Invalid(f"method.type {kind!r} is not supported here (supervised or dpo)", "method.type")
    section = method.get(kind) or {}
    given = (section.get("hyperparameters") if isinstance(section, dict) else section) or {}
    if not isinstance(given, dict):
        raise Invalid(f"method.{kind}.hyperparameters must be an object", f"method.{kind}.hyperparameters")
    hyper: dict[str, Any] = {"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto"}
    if kind == "dpo":
        hyper["beta"] = "auto"
    for name, value in given.items():
        if name not in hyper:
            raise Invalid(f"unknown hyperparameter {name!r}", f"method.{kind}.hyperparameters.{name}")
        hyper[name] = value
    for name, (low, high) in RANGES.items():
        value = hyper[name]
        if value != "auto" and (isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high):
            raise Invalid(
                f"{name} must be 'auto' or an integer from {low:g} to {high:g}",
                f"method.{kind}.hyperparameters.{name}",
            )
    upper_bounds: tuple[tuple[str, float | None], ...] = (("learning_rate_multiplier", None), ("beta", MAX_BETA))
    for name, upper in upper_bounds:
        value = hyper.get(name, "auto")
        if value == "auto":
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0 or (upper and value > upper):
            limit = f"in (0, {upper:g}]" if upper else "positive"
            raise Invalid(f"{name} must be 'auto' or a number {limit}", f"method.{kind}.hyperparameters.{name}")
    return kind, hyper


def _hyperparameters(hyper: dict[str, Any]) -> Hyperparameters:
    return Hyperparameters(
        epochs=hyper["n_epochs"],
        batch_size=hyper["batch_size"],
        learning_rate_multiplier=float(hyper["learning_rate_multiplier"])
        if hyper["learning_rate_multiplier"] != "auto"
        else "auto",
        beta=float(hyper["beta"]) if hyper.get("beta", "auto") != "auto" else "auto",
    )
