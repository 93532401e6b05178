"""Fine-tuning jobs of `fto serve`: OpenAI's job requests turned into local backend jobs, and their state back.

The local backend does the work (a detached worker per job); this module only translates, and keeps the request of
each job in the one Store (FTO_HOME's database), beside every other job fto knows.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fto.backends.base import PreparedData
from fto.backends.local import LocalBackend, LocalOptions
from fto.backends.local.folder import JobFolder
from fto.backends.local.worker import CANCEL_GRACE_SECONDS
from fto.orchestrator.data.load import read_dataset
from fto.orchestrator.data.validate import require_valid, validate_file
from fto.orchestrator.errors import DataError
from fto.orchestrator.serve.errors import Invalid, NotFound
from fto.orchestrator.serve.files import FileStore
from fto.orchestrator.serve.requests import CreateFineTuningJob, ReinforcementSection
from fto.orchestrator.store import Store
from fto.schemas import DataSpec, Hyperparameters, JobSpec, JobStatus, Metric, RftSpec
from fto.schemas.graders import Grader

JOB_ID = re.compile(r"^ftjob-[0-9a-f]{24}$")
OPENAI_STATUS = {
    JobStatus.PENDING: "queued",
    JobStatus.VALIDATING: "validating_files",
    JobStatus.QUEUED: "queued",
    JobStatus.RUNNING: "running",
    JobStatus.PAUSED: "paused",
    JobStatus.CANCELLING: "cancelling",
    JobStatus.SUCCEEDED: "succeeded",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "cancelled",
}
ORGANIZATION = "org-fto-serve"
LOG = logging.getLogger("fto.serve")


class ServeJobs:
    """`fto serve`'s fine-tuning jobs: requests kept in the one Store, the work done by the local backend."""

    def __init__(self, files: FileStore, base_models: Sequence[str], options: dict[str, Any]):
        self.store = Store()
        self.files = files
        self.base_models = list(base_models)
        self.options = options  # local backend options shared by every job (device, threads, …)
        self.backend = LocalBackend("serve", LocalOptions(**options))

    # requests ---------------------------------------------------------------------------------------

    def create(self, body: CreateFineTuningJob) -> dict[str, Any]:
        """Check the request and its files, record it, and start the local job; returns the job object."""
        if body.model not in self.base_models:
            raise Invalid(
                f"Model {body.model!r} cannot be fine-tuned here; available: {', '.join(self.base_models)}", "model"
            )
        method = body.resolved_method()
        section = method.section()
        hyper = section.hyperparameters.model_dump()
        if method.type != "dpo":
            hyper.pop("beta")
        reward = _reward(section) if isinstance(section, ReinforcementSection) else None
        grader = {"grader": section.grader} if isinstance(section, ReinforcementSection) else {}
        fmt = {"dpo": "preference", "reinforcement": "rft"}.get(method.type, "chat")
        train = self._checked_file(body.training_file, "training_file", fmt)
        validation = self._checked_file(body.validation_file, "validation_file", fmt) if body.validation_file else None
        seed = body.seed if body.seed is not None else secrets.randbelow(2**31)
        job_id = f"ftjob-{secrets.token_hex(12)}"
        record = {
            "id": job_id,
            "created_at": int(time.time()),
            "model": body.model,
            "training_file": body.training_file,
            "validation_file": body.validation_file,
            "method": {
                "type": method.type,
                method.type: {"hyperparameters": hyper} | grader,
            },
            "suffix": body.suffix,
            "seed": seed,
            "metadata": body.metadata or None,
            "paused": False,
        }
        spec = JobSpec(
            name="serve",
            method={"dpo": "dpo", "reinforcement": "rft"}.get(method.type, "sft"),  # type: ignore[arg-type]
            data=DataSpec(train=str(train), validation=str(validation) if validation else None),
            hyperparameters=_hyperparameters(hyper),
            seed=seed,
            suffix=body.suffix,
            graders=[reward] if reward else [],
            rft=RftSpec(grader=reward.name) if reward else None,
        )
        backend = LocalBackend("serve", LocalOptions(**{**self.options, "model": body.model}))
        # The job trains on its own copies: deleting the client's file later cannot take them away.
        copies = backend.upload(PreparedData(train=train, validation=validation, train_examples=0))
        self._save(record)
        backend.submit(spec, copies, job_id)
        return self.view(job_id)

    def _checked_file(self, file_id: str, param: str, fmt: str) -> Path:
        try:
            path = self.files.path(file_id)
        except NotFound:
            raise Invalid(f"invalid {param}: no such file {file_id}", param) from None
        try:  # the same checks as `fto data validate`, so a bad line is named now rather than fail the job later
            if fmt == "rft":  # prompts and the fields the grader reads; no answers needed
                read_dataset(str(path), "chat", method="rft")
            else:
                require_valid(validate_file(path, fmt=fmt))
        except DataError as exc:
            shown = str(exc).replace(str(path), file_id)
            raise Invalid(f"invalid {param}: {shown}", param) from None
        return path

    def record(self, job_id: str) -> dict[str, Any]:
        """What the client asked of the job (404 when there is no such job)."""
        found = self.store.serve_job(job_id) if JOB_ID.match(job_id) else None
        if found is None:
            raise NotFound(f"No such fine-tuning job: {job_id}")
        return found

    def _save(self, record: dict[str, Any]) -> None:
        self.store.save_serve_job(record["id"], record["created_at"], record)

    def ids(self) -> list[str]:
        """Every job's id, newest first."""
        return [record["id"] for record in self.store.serve_jobs()]

    def views(self, metadata: dict[str, str]) -> list[dict[str, Any]]:
        """Job objects, newest first, of the jobs whose metadata holds every pair in `metadata`.

        One job that cannot be shown (its folder damaged, say) is left out and logged: it never takes the list down.
        """
        found = []
        for record in self.store.serve_jobs():
            if not all((record.get("metadata") or {}).get(key) == value for key, value in metadata.items()):
                continue
            try:
                found.append(self.view(record["id"]))
            except Exception as exc:  # a listing serves every client: one broken job must not fail it
                LOG.warning(
                    "fine-tuning job %s left out of the list: %s: %s", record.get("id"), type(exc).__name__, exc
                )
        return found

    # state ------------------------------------------------------------------------------------------

    def view(self, job_id: str) -> dict[str, Any]:
        """The fine_tuning.job object."""
        record = self.record(job_id)
        state = self.backend.get(job_id)
        status = OPENAI_STATUS[state.status]
        if record["paused"] and state.status in (JobStatus.CANCELLED, JobStatus.PAUSED, JobStatus.RUNNING):
            status = "paused"  # asked to pause: it stops at its next step
        elif record.get("cancel_requested") and not state.status.terminal:
            status = "cancelling"
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
            "hyperparameters": self._resolved(job_id, hyper),
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

    def _resolved(self, job_id: str, asked: dict[str, Any]) -> dict[str, Any]:
        """The hyperparameters as asked, with "auto" replaced by the values used once training has begun."""
        shown = {key: asked[key] for key in ("n_epochs", "batch_size", "learning_rate_multiplier")}
        used = self._folder(job_id).read_status().get("hyperparameters")
        if used:
            shown["n_epochs"] = used["n_epochs"] if shown["n_epochs"] == "auto" else shown["n_epochs"]
            shown["batch_size"] = used["batch_size"] if shown["batch_size"] == "auto" else shown["batch_size"]
            if shown["learning_rate_multiplier"] == "auto":
                shown["learning_rate_multiplier"] = 1.0  # the local backend's default rate, unscaled
        return shown

    def _folder(self, job_id: str) -> JobFolder:
        return JobFolder(self.backend.root / "jobs" / job_id)

    def _finished_at(self, job_id: str) -> int:
        status_file = self._folder(job_id).status_file
        return int(status_file.stat().st_mtime) if status_file.exists() else int(time.time())

    def model_id(self, record: dict[str, Any]) -> str:
        """The fine-tuned model's id, in OpenAI's `ft:BASE:ORG:SUFFIX:ID` shape."""
        return f"ft:{record['model']}:fto-serve:{record['suffix'] or 'fto'}:{record['id'].removeprefix('ftjob-')}"

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Ask a job that has not ended to stop; answers at once with status "cancelling" (then "cancelled")."""
        record = self.record(job_id)
        if self.backend.get(job_id).status.terminal:
            raise Invalid(f"Job {job_id} has already ended; it cannot be cancelled")
        record["cancel_requested"] = True
        self._save(record)
        self.backend.cancel(job_id)  # the worker stops at its next step, or is cut short after a grace period
        return self.view(job_id)

    def pause(self, job_id: str) -> dict[str, Any]:
        """Stop a running job so that `resume` continues it from its last checkpoint; answers at once."""
        record = self.record(job_id)
        if self.backend.get(job_id).status.terminal:
            raise Invalid(f"Job {job_id} has already ended; it cannot be paused")
        record["paused"] = True
        self._save(record)
        self.backend.cancel(job_id)  # the worker stops at the next step and keeps a checkpoint to resume from
        return self.view(job_id)

    def resume(self, job_id: str) -> dict[str, Any]:
        """Continue a paused job from its last checkpoint (once its worker has stopped: at most a grace period)."""
        record = self.record(job_id)
        if not record["paused"]:
            raise Invalid(f"Job {job_id} is not paused")
        folder = self._folder(job_id)
        deadline = time.monotonic() + CANCEL_GRACE_SECONDS + 5
        while folder.worker_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if folder.worker_alive():
            raise Invalid(f"Job {job_id} is still stopping; resume it in a moment")
        record["paused"] = False
        self._save(record)
        self.backend.resume(job_id)
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
            data = {"step": m.step, "total_steps": m.total_steps, "train_loss": m.loss, "valid_loss": m.valid_loss,
                    # RFT's, under the names OpenAI's RFT dashboard and events use
                    "train_reward_mean": m.reward, "valid_reward_mean": m.valid_reward}  # fmt: skip
            out.append(
                (
                    created,
                    2 * n + 1,
                    {
                        "object": "fine_tuning.job.event",
                        "id": f"ftevent-{key}-m{n}",
                        "created_at": int(created),
                        "level": "info",
                        "message": _step_line(m),
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


SERVE_GRADERS = ("string_check", "text_similarity", "python", "multi")  # model graders would need a key here


def _reward(section: ReinforcementSection) -> Grader:
    """OpenAI's grader object as fto's (the same shape: fto's graders are modelled on OpenAI's)."""
    from pydantic import TypeAdapter, ValidationError

    from fto.orchestrator.graders.checks import problem

    raw = section.grader
    parts = list(raw.get("graders", {}).values()) if raw.get("type") == "multi" else []
    for one in [raw, *parts]:
        if isinstance(one, dict) and one.get("type") not in SERVE_GRADERS:
            raise Invalid(f"fto serve runs {', '.join(SERVE_GRADERS)} graders; not {one.get('type')!r}",
                          "method.reinforcement.grader")  # fmt: skip
    try:
        grader: Grader = TypeAdapter(Grader).validate_python(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise Invalid(f"invalid grader: {where}: {first['msg']}", "method.reinforcement.grader") from None
    found = problem(grader)
    if found:
        raise Invalid(f"invalid grader: {found[0]}: {found[1]}", "method.reinforcement.grader")
    return grader


def _step_line(metric: Metric) -> str:
    """A metrics event's message: the step and its loss, and its mean reward in RFT."""
    parts = [f"Step {metric.step}/{metric.total_steps}:" if metric.total_steps else f"Step {metric.step}:"]
    if metric.loss is not None:
        parts.append(f"training loss={metric.loss:.4f}")
    if metric.reward is not None:
        parts.append(f"mean reward={metric.reward:.4f}")
    return " ".join(parts).removesuffix(":")


def _hyperparameters(hyper: dict[str, Any]) -> Hyperparameters:
    return Hyperparameters(
        epochs=hyper["n_epochs"],
        batch_size=hyper["batch_size"],
        learning_rate_multiplier=float(hyper["learning_rate_multiplier"])
        if hyper["learning_rate_multiplier"] != "auto"
        else "auto",
        beta=float(hyper["beta"]) if hyper.get("beta", "auto") != "auto" else "auto",
    )
