"""Experiment tracking: each job logged to MLflow as one run — parameters at the start, metrics as the poller
records them, the outcome at the end, then eval scores and the reports as artifacts — for every backend alike.

Tracking never stops a job: a tracker that fails is reported once (an event on the job) and left alone for the
rest of the process. MLflow loads only when a job file asks for it.
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from fto.orchestrator.errors import ConfigError
from fto.orchestrator.secrets import redact
from fto.orchestrator.store import Store, now
from fto.orchestrator.sweep import point_spec
from fto.schemas import Experiment, Job, JobEvent, JobSpec, JobStatus, ProviderJob, ProviderUpdates
from fto.schemas.job_spec import MlflowTracking
from fto.schemas.results import ExperimentResults, ModelRole

METRICS = ("loss", "valid_loss", "learning_rate", "grad_norm", "tokens_per_second", "reward_accuracy", "epoch")
ENDINGS = {JobStatus.SUCCEEDED: "FINISHED", JobStatus.FAILED: "FAILED", JobStatus.CANCELLED: "KILLED"}
JOB_TAG = "fto.job_id"
T = TypeVar("T")


def check(spec: JobSpec) -> None:
    """Before anything is submitted: a tracker the job file names must be installed."""
    if spec.tracking and spec.tracking.mlflow and importlib.util.find_spec("mlflow") is None:
        raise ConfigError("tracking.mlflow needs MLflow: pip install 'fto[mlflow]'", field="tracking.mlflow")


def flat(prefix: str, value: Any) -> dict[str, str]:
    """Nested settings as MLflow's flat parameters: {"lora.r": "8", ...}."""
    if isinstance(value, dict):
        found: dict[str, str] = {}
        for key, inner in value.items():
            found.update(flat(f"{prefix}.{key}" if prefix else str(key), inner))
        return found
    return {prefix: redact(str(value))[:6000]}  # MLflow's limit on a parameter's value


def _beside_database(tracking_uri: str) -> str | None:
    """For a SQLite store, artifacts beside its file (MLflow's default, ./mlruns, depends on the working folder)."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return (Path(tracking_uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()


class MlflowRuns:
    """One MLflow run per fto job, found again by its tag after a restart."""

    def __init__(self, settings: MlflowTracking, experiment_name: str):
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")  # a server that is down is said soon
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=settings.tracking_uri)
        found = self.client.get_experiment_by_name(experiment_name)
        if found:
            self.experiment_id = found.experiment_id
        else:
            location = settings.artifact_location or _beside_database(settings.tracking_uri)
            self.experiment_id = self.client.create_experiment(experiment_name, artifact_location=location)
        self.runs: dict[str, str] = {}

    def run_for(self, experiment: Experiment, job: Job) -> str:
        """The job's run, created with its parameters the first time."""
        if job.id in self.runs:
            return self.runs[job.id]
        existing = self.client.search_runs([self.experiment_id], filter_string=f"tags.`{JOB_TAG}` = '{job.id}'")
        if existing:
            self.runs[job.id] = existing[0].info.run_id
            return self.runs[job.id]
        from mlflow.entities import Param

        spec = point_spec(experiment.spec, job.backend)
        section = spec.backends.get(job.backend)
        tags = {JOB_TAG: job.id, "fto.experiment_id": experiment.id, "fto.backend": job.backend,
                "fto.method": spec.method}  # fmt: skip
        run = self.client.create_run(self.experiment_id, run_name=f"{job.backend} {job.id}", tags=tags)
        params = {
            **flat("", spec.hyperparameters.model_dump(exclude_none=True, mode="json")),
            **flat("backend", section.model_dump(exclude_none=True, mode="json") if section else {}),
            "method": spec.method,
            "seed": str(spec.seed),
            "data.train": str(spec.data.train),
        }
        items = [Param(k, v) for k, v in params.items()]
        for k in range(0, len(items), 100):  # MLflow takes 100 parameters a call
            self.client.log_batch(run.info.run_id, params=items[k : k + 100])
        self.runs[job.id] = run.info.run_id
        return run.info.run_id

    def record(self, experiment: Experiment, job: Job, state: ProviderJob, updates: ProviderUpdates) -> None:
        """A poll's news: metrics by step, the status as a tag, and the run's end when the job ends."""
        from mlflow.entities import Metric, RunTag

        run_id = self.run_for(experiment, job)
        stamp = int(time.time() * 1000)
        metrics = [
            Metric(key, float(value), stamp, m.step)
            for m in updates.metrics
            for key in METRICS
            if (value := getattr(m, key)) is not None
        ]
        tags = [RunTag("fto.status", state.status.value)]
        if state.fine_tuned_model:
            tags.append(RunTag("fto.fine_tuned_model", state.fine_tuned_model))
        if state.trained_tokens:
            metrics.append(Metric("trained_tokens", float(state.trained_tokens), stamp, 0))
        for k in range(0, max(1, len(metrics)), 1000):  # MLflow takes 1,000 metrics a call
            self.client.log_batch(run_id, metrics=metrics[k : k + 1000], tags=tags if k == 0 else [])
        if state.status in ENDINGS:
            self.client.set_terminated(run_id, ENDINGS[state.status])

    def report(
        self, experiment: Experiment, jobs: Sequence[Job], results: ExperimentResults, files: list[Path]
    ) -> None:
        """Eval scores (with their intervals) on each job's run, and the reports as its artifacts."""
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        for job in jobs:
            run_id = self.run_for(experiment, job)
            metrics = []
            for model in results.models:
                if model.target.job != job.id or model.target.role not in (ModelRole.BASE, ModelRole.FINE_TUNED):
                    continue
                who = model.target.role.value
                for scorer, score in model.scores.items():
                    if score.value == score.value:
                        metrics.append(Metric(f"eval.{who}.{scorer}", float(score.value), stamp, 0))
                    if score.low is not None and score.high is not None:
                        metrics += [Metric(f"eval.{who}.{scorer}.low", float(score.low), stamp, 0),
                                    Metric(f"eval.{who}.{scorer}.high", float(score.high), stamp, 0)]  # fmt: skip
            if metrics:
                self.client.log_batch(run_id, metrics=metrics)
            for path in files:
                self.client.log_artifact(run_id, str(path))


class Tracking:
    """The trackers of the experiments a process touches, each set up once and dropped at its first failure."""

    def __init__(self, store: Store):
        self.store = store
        self.experiments: dict[str, Experiment] = {}
        self.trackers: dict[str, MlflowRuns | None] = {}  # by experiment; None: none asked, or it failed

    def _tracker(self, experiment: Experiment) -> MlflowRuns | None:
        if experiment.id not in self.trackers:
            wanted = experiment.spec.tracking.mlflow if experiment.spec.tracking else None
            self.trackers[experiment.id] = None
            if wanted:
                name = wanted.experiment or experiment.name
                self.trackers[experiment.id] = self._guard(experiment, None, MlflowRuns, wanted, name)
        return self.trackers[experiment.id]

    def _guard(self, experiment: Experiment, job_id: str | None, call: Callable[..., T], *args: Any) -> T | None:
        try:
            return call(*args)
        except Exception as exc:  # tracking never stops a job: said once, then left alone
            self.trackers[experiment.id] = None
            message = redact(f"tracking: MLflow failed, no more logging to it from this process: {exc}")[:2000]
            for job in [self.store.job(job_id)] if job_id else self.store.jobs(experiment.id):
                self.store.add_updates(job.id, [JobEvent(created_at=now(), level="warning", message=message)], [],
                                       None)  # fmt: skip
            return None

    def _experiment(self, job: Job) -> Experiment:
        if job.experiment_id not in self.experiments:
            self.experiments[job.experiment_id] = self.store.experiment(job.experiment_id)
        return self.experiments[job.experiment_id]

    def record(self, polls: Sequence[tuple[str, ProviderJob, ProviderUpdates]]) -> None:
        """What a poller just wrote, to the trackers of the jobs' experiments."""
        for job_id, state, updates in polls:
            job = self.store.job(job_id)
            experiment = self._experiment(job)
            tracker = self._tracker(experiment)
            if tracker is not None:
                self._guard(experiment, job_id, tracker.record, experiment, job, state, updates)

    def report(self, experiment: Experiment, results: ExperimentResults, files: list[Path]) -> None:
        """An experiment's eval results and reports, to its trackers."""
        tracker = self._tracker(experiment)
        if tracker is not None:
            jobs = self.store.jobs(experiment.id)
            self._guard(experiment, None, tracker.report, experiment, jobs, results, files)
