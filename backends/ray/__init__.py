"""The ray backend: fto's local trainer on a Ray cluster, through the Ray Jobs API.

Submitting sends the prepared data in the job's runtime env; the job's driver (driver.py) trains with Ray Train's
TorchTrainer on `num_workers` processes. fto follows the job through the Jobs API alone (status, and the reports
the trainer prints into the job's log), so it works from any machine that can reach the head's dashboard port.
Importing this package stays cheap: no ray, no torch (the CLI lists backends on every call).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, model_validator

from fto.backends.base import BackendOptions, GenerationParams, UploadedData
from fto.backends.local import LocalBackend, LocalOptions
from fto.backends.ray import reports
from fto.backends.ray.driver import single_process, unschedulable, worker_resources
from fto.orchestrator import storage
from fto.orchestrator.errors import BackendError
from fto.schemas import Completion, JobEvent, JobSpec, JobStatus, Message, Metric, ProviderJob, ProviderUpdates

ENTRYPOINT = "python -m fto.backends.ray.driver"
JOB_FILE = "fto-job.json"  # in the runtime env's working_dir, beside the training data
_ATTEMPT = re.compile(r"^fto-(?P<job>.+)-(?P<attempt>\d+)$")


class RayOptions(LocalOptions):
    """The `ray` section: the local trainer's options, plus where the cluster is and how to spread the work."""

    address: str | None = Field(
        default=None, description="the head's dashboard, http://HEAD:8265 (default: RAY_ADDRESS, else 127.0.0.1)"
    )
    storage_path: str | None = Field(
        default=None,
        description="where checkpoints and models go: a folder every node shares, or an object store URL "
        "(s3://bucket/path); default: a folder under FTO_HOME (right for a cluster on this machine)",
    )
    num_workers: int = Field(default=1, gt=0, description="training processes (DDP; FSDP with shard: true)")
    use_gpu: bool = Field(default=False, description="one GPU per worker (NCCL); CPU workers use gloo")
    resources_per_worker: dict[str, float] | None = Field(
        default=None, description="what each worker asks the cluster for, e.g. {CPU: 4, GPU: 1}"
    )

    @model_validator(mode="before")
    @classmethod
    def _not_local_only(cls, data: Any) -> Any:
        for name, instead in (("processes", "num_workers"), ("max_workers", "resources_per_worker")):
            if isinstance(data, dict) and name in data:
                raise ValueError(f"{name} is a local backend setting; on Ray, use {instead}")
        return data


class RayBackend(LocalBackend):
    """Trains on a Ray cluster: one Ray job per fto job, `num_workers` training processes in it."""

    Options: ClassVar[type[BackendOptions]] = RayOptions
    requires: ClassVar[tuple[str, ...]] = ("ray", *LocalBackend.requires)
    min_poll_interval: float = 1.0  # a request to the head's dashboard, and a log read
    max_poll_interval: float = 5.0
    max_concurrency: int = 8
    max_requests_per_second: float = 20.0

    def __init__(self, name: str, options: RayOptions):
        super().__init__(name, options)
        self.ray_options = options
        self._client: Any = None

    @property
    def address(self) -> str:
        return self.ray_options.address or os.environ.get("RAY_ADDRESS") or "http://127.0.0.1:8265"

    @property
    def provider_key(self) -> str:
        return f"ray {self.address}"

    @property
    def storage_path(self) -> str:
        return self.ray_options.storage_path or str(self.root / "storage")

    # the Jobs API --------------------------------------------------------------------------------------

    def client(self) -> Any:
        """The Jobs API client (connects on first use; an unreachable head is a retryable error)."""
        if self._client is None:
            import logging

            from ray.job_submission import JobSubmissionClient

            for name in ("ray", "ray.dashboard.modules.dashboard_sdk", "ray._private.runtime_env.packaging"):
                logging.getLogger(name).setLevel(logging.WARNING)  # INFO lines would cut through fto's table

            self._client = self._call(lambda: JobSubmissionClient(self.address))
        return self._client

    def _call(self, fn: Any) -> Any:
        try:
            return fn()
        except (ConnectionError, OSError) as exc:
            raise BackendError(
                f"cannot reach the Ray head at {self.address} ({exc}). Is the cluster up? The job's checkpoints "
                "are in storage_path: once the head is back, `fto resume JOB` continues from the last one",
                backend=self.name,
                retryable=True,
            ) from None
        except RuntimeError as exc:  # the SDK's error for an HTTP error answer
            text = str(exc)
            retryable = any(code in text for code in ("502", "503", "504", "Connection", "connect"))
            raise BackendError(f"Ray: {text}", backend=self.name, retryable=retryable) from None

    def submit(self, spec: JobSpec, uploaded: UploadedData, job_id: str) -> str:
        if self.find(job_id):  # submitted before (a retried submit): never a second Ray job
            return job_id
        self._submit(spec, uploaded, job_id, attempt=1, resume=False)
        return job_id

    def _submit(self, spec: JobSpec, uploaded: UploadedData, job_id: str, attempt: int, resume: bool) -> None:
        stage = self.root / "jobs" / job_id / f"attempt-{attempt}"  # the runtime env's working_dir
        stage.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(uploaded.train_file, stage / "train.jsonl")
        if uploaded.validation_file:
            shutil.copyfile(uploaded.validation_file, stage / "validation.jsonl")
        local = LocalOptions.model_validate(self.ray_options.model_dump(include=set(LocalOptions.model_fields)))
        job = {
            "job_id": job_id,
            "spec": spec.model_dump(mode="json"),
            "options": local.model_dump(mode="json"),
            "storage_path": self.storage_path,
            "num_workers": self.ray_options.num_workers,
            "use_gpu": self.ray_options.use_gpu,
            "resources_per_worker": self.ray_options.resources_per_worker,
            "resume": resume,
            "attempt": attempt,
        }
        (stage / JOB_FILE).write_text(json.dumps(job, indent=1))
        runtime_env = {"working_dir": str(stage), "env_vars": {"PYTHONUNBUFFERED": "1", "RAY_DEDUP_LOGS": "0"}}
        # One worker: the driver trains, on what the job asks (Ray holds the job PENDING until it is free).
        # More: the driver only waits on Ray Train's workers, and takes nothing from them.
        asked = worker_resources(job) if single_process(job) else {}
        self._call(
            lambda: self.client().submit_job(
                entrypoint=ENTRYPOINT,
                submission_id=f"fto-{job_id}-{attempt}",
                runtime_env=runtime_env,
                entrypoint_num_cpus=asked.get("CPU", 0),
                entrypoint_num_gpus=asked.get("GPU", 0),
                entrypoint_resources={k: v for k, v in asked.items() if k not in ("CPU", "GPU")} or None,
                metadata={"fto_job_id": job_id},
            )
        )

    def _attempts(self, job_id: str) -> list[Any]:
        """The job's Ray submissions, first to latest (a resume is a new submission)."""
        found = []
        for details in self._call(lambda: self.client().list_jobs()):
            match = _ATTEMPT.match(details.submission_id or "")
            if match and match["job"] == job_id:
                found.append((int(match["attempt"]), details))
        return [details for _, details in sorted(found, key=lambda pair: pair[0])]

    def find(self, job_id: str) -> str | None:
        return job_id if self._attempts(job_id) else None

    def resume(self, provider_job_id: str) -> None:
        """A new Ray job for the same fto job, continuing from the last checkpoint in storage_path."""
        attempts = self._attempts(provider_job_id)
        if attempts and not _ended(attempts[-1]):
            raise BackendError("the job is still running", backend=self.name)
        stage = self.root / "jobs" / provider_job_id / "attempt-1"
        if not (stage / JOB_FILE).is_file():
            raise BackendError(f"this machine does not have the job's submission files ({stage})", backend=self.name)
        job = json.loads((stage / JOB_FILE).read_text())
        uploaded = UploadedData(
            train_file=str(stage / "train.jsonl"),
            validation_file=str(stage / "validation.jsonl") if (stage / "validation.jsonl").exists() else None,
        )
        spec = JobSpec.model_validate(job["spec"])
        self._submit(spec, uploaded, provider_job_id, attempt=len(attempts) + 1, resume=True)

    def cancel(self, provider_job_id: str) -> None:
        attempts = self._attempts(provider_job_id)
        if attempts and not _ended(attempts[-1]):
            self._call(lambda: self.client().stop_job(attempts[-1].submission_id))

    def get(self, provider_job_id: str) -> ProviderJob:
        return self.poll(provider_job_id, None)[0]

    def updates(self, provider_job_id: str, cursor: str | None) -> ProviderUpdates:
        return self.poll(provider_job_id, cursor)[1]

    def poll(self, provider_job_id: str, cursor: str | None) -> tuple[ProviderJob, ProviderUpdates]:
        """The latest submission's status with what its reports say, and every report after the cursor."""
        attempts = self._attempts(provider_job_id)
        if not attempts:
            raise BackendError(
                f"the Ray cluster at {self.address} has no record of this job (was the head restarted?); its "
                "checkpoints are in storage_path: `fto resume` starts it again from the last one",
                backend=self.name,
            )
        seen_attempt, seen_count = (int(x) for x in cursor.split(":")) if cursor else (1, 0)
        merged: dict[str, Any] = {}
        events: list[JobEvent] = []
        metrics: list[Metric] = []
        log, found = "", []
        for number, details in enumerate(attempts, 1):
            log = self._call(lambda d=details: self.client().get_job_logs(d.submission_id))
            found = reports.parse(log)
            for report in (r for r in found if r.kind == "status"):
                merged.update(report.body)
            if number < seen_attempt:
                continue
            for report in found[seen_count if number == seen_attempt else 0 :]:
                if report.kind == "event":
                    events.append(JobEvent.model_validate(report.body))
                elif report.kind == "metric":
                    metrics.append(Metric.model_validate(report.body))
        latest = next((r.body for r in reversed(found) if r.kind == "status"), {})
        state = self._state(attempts[-1], merged, latest, log)
        return state, ProviderUpdates(events=events, metrics=metrics, cursor=f"{len(attempts)}:{len(found)}")

    def _state(self, details: Any, merged: dict[str, Any], reported: dict[str, Any], log: str) -> ProviderJob:
        """Ray's status of the latest submission, told apart by what the trainer last reported."""
        ray_status = str(getattr(details.status, "value", details.status))
        said = JobStatus(reported["status"]) if "status" in reported else None
        error = reported.get("error")
        if ray_status == "PENDING" and (problem := self._never_placed(details)):
            self._call(lambda: self.client().stop_job(details.submission_id))  # it would wait forever
            status, error = JobStatus.FAILED, problem
        elif ray_status == "PENDING" or (ray_status == "RUNNING" and said is None):
            status = JobStatus.QUEUED
        elif ray_status == "RUNNING":
            status = said if said and not said.terminal else JobStatus.RUNNING  # the driver is still ending
        elif ray_status == "STOPPED":
            status = JobStatus.CANCELLED
        elif ray_status == "SUCCEEDED" and said in (JobStatus.SUCCEEDED, JobStatus.CANCELLED):
            status = said
        else:
            status = JobStatus.FAILED
            if not error:
                tail = "\n".join(log.splitlines()[-5:])
                said_ray = (details.message or "").strip().splitlines()[:1]  # the rest repeats the log
                error = f"the Ray job {details.submission_id} ended {ray_status}: {''.join(said_ray)}\n{tail}"
        return ProviderJob(
            status=status,
            base_model=merged.get("base_model"),
            fine_tuned_model=merged.get("fine_tuned_model") if status == JobStatus.SUCCEEDED else None,
            trained_tokens=merged.get("trained_tokens"),
            error=error if status == JobStatus.FAILED else None,
        )

    def _never_placed(self, details: Any) -> str | None:
        """Why a PENDING job's driver can never start on this cluster (None: it waits for free resources)."""
        o = self.ray_options
        job = {"num_workers": o.num_workers, "options": {"shard": o.shard}, "use_gpu": o.use_gpu,
               "resources_per_worker": o.resources_per_worker}  # fmt: skip
        if not single_process(job):
            return None  # the driver takes no resources: it checks the workers' itself
        asked = worker_resources(job)
        from ray.util.state import list_nodes

        nodes = self._call(lambda: list_nodes(address=self.address, detail=True, raise_on_missing_output=False))
        return unschedulable(asked, 1, [n.resources_total for n in nodes if n.state == "ALIVE"])

    def log(self, provider_job_id: str) -> str:
        """The Ray job's own log (every attempt's), as `ray job logs` prints it."""
        return "".join(self._call(lambda d=d: self.client().get_job_logs(d.submission_id))
                       for d in self._attempts(provider_job_id))  # fmt: skip

    # models in storage_path ----------------------------------------------------------------------------

    def _local(self, model: str) -> str:
        """A model the cluster stored, as a folder here (an object store's is downloaded once)."""
        return str(storage.localize(model, self.root / "models")) if storage.is_url(model) else model

    def complete_many(self, model: str, prompts: Any, params: GenerationParams) -> list[Completion]:
        return super().complete_many(self._local(model), prompts, params)

    def reference_losses(self, model: str, conversations: Any) -> list[float]:
        return super().reference_losses(self._local(model), conversations)

    def complete(self, model: str, messages: list[Message] | Any, params: GenerationParams) -> Completion:
        return self.complete_many(model, [messages], params)[0]

    def export(self, provider_job_id: str, model: str, target: str, out: Path | None) -> list[str]:
        return super().export(provider_job_id, self._local(model), target, out)


def _ended(details: Any) -> bool:
    status = str(getattr(details.status, "value", details.status))
    return status in ("STOPPED", "SUCCEEDED", "FAILED")
