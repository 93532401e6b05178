"""An experiment → one job per backend: check everything first, record the intent, then call providers.

Crash-safe: a job is in the store before its provider hears of it, and the store notes when a create request is
about to go out. If fto dies before the provider's answer is stored, `reconcile` asks the provider (by our job id,
which the backend passes as an idempotency key) before ever sending the request again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import yaml

from fto.backends import registry
from fto.backends.base import Backend, UploadedData
from fto.orchestrator import experiment_files as files
from fto.orchestrator import retry, tracking
from fto.orchestrator.config import LoadedJob
from fto.orchestrator.data.check import CheckReport
from fto.orchestrator.data.check.guard import check_before_submit
from fto.orchestrator.data.load import DatasetSplits, load_splits, training_sample
from fto.orchestrator.errors import BackendError, ConfigError, FtoError
from fto.orchestrator.learning_curve import subset
from fto.orchestrator.paths import experiment_dir
from fto.orchestrator.secrets import redact
from fto.orchestrator.store import Store, now
from fto.orchestrator.sweep import point_spec
from fto.schemas import Experiment, Job, JobEvent, JobSpec

LOG = logging.getLogger("fto.submit")


@dataclass(frozen=True)
class Submitted:
    experiment: Experiment
    jobs: list[Job]
    data: DatasetSplits
    notices: list[str]
    check: CheckReport | None  # the data check's findings (warnings)


def backend_for(spec: JobSpec, name: str) -> Backend:
    """The backend configured by the job file's section `name`."""
    return registry.create(name, spec.backends.get(name))


def _save_plan(store: Store, experiment_id: str, spec: JobSpec, backends: list[str]) -> None:
    """What `fto plan` expected of each job, kept beside the results (the dashboard shows estimate vs actual). A
    plan that cannot be made never stops a run."""
    from fto.orchestrator import plan as planning

    try:
        found = planning.plan(spec, backends, store)
    except Exception as exc:  # e.g. a plugin backend whose estimates fail: the run goes on without a plan
        LOG.info("no plan kept for %s: %s", experiment_id, exc)
        return
    files.save(store, experiment_id, files.PLAN, found.model_dump_json(indent=1))


def submit(store: Store, loaded: LoadedJob, allow_sensitive: bool = False) -> Submitted:
    """Validate the data once, refuse what a backend cannot do, then submit to each backend in turn.

    Nothing reaches a provider until every check has passed for every chosen backend.
    """
    spec = loaded.spec
    tracking.check(spec)
    backends = [backend_for(spec, name) for name in loaded.backends]
    for name, backend in zip(loaded.backends, backends, strict=True):  # said before the data is even read
        try:
            backend.check(point_spec(spec, name))
        except ConfigError as exc:
            if exc.file is not None or not exc.field:
                raise
            raise loaded.error(exc.message, *exc.field.split(".")) from None  # placed at the job file's line
    data = load_splits(spec)
    _check_against_data(loaded, len(data.train))
    report = check_before_submit(spec, data, backends, allow_sensitive)  # may stop the job: nothing recorded yet

    experiment, jobs = store.create_experiment(spec, str(loaded.path) if loaded.path else None, loaded.backends)
    if report is not None:
        files.save(store, experiment.id, files.CHECK, json.dumps(report.to_json(), indent=2))
    files.save(store, experiment.id, files.HELD_OUT, files.rows_text(data.eval))  # exactly what `fto eval` uses
    _save_plan(store, experiment.id, spec, loaded.backends)
    if spec.eval and spec.eval.train_sample:
        sample = training_sample(data.train, spec.eval.train_sample, spec.seed)
        files.save(store, experiment.id, files.TRAIN_SAMPLE, files.rows_text(sample))
    # the job as written (a file's own text, comments and all), or as given from Python
    written = loaded.path.read_text() if loaded.path else yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)
    files.save(store, experiment.id, "job.yaml", written)
    for job, backend in zip(jobs, backends, strict=True):
        submit_job(store, experiment, job, backend, data)
    notices = [*loaded.notes, *(f"{b.name}: {text}" for b in backends if (text := b.notice(b.options)))]
    return Submitted(experiment=experiment, jobs=store.jobs(experiment.id), data=data, notices=notices, check=report)


def _check_against_data(loaded: LoadedJob, examples: int) -> None:
    """Hyperparameters bounded by the data: a batch cannot hold more examples than there are."""
    batch = loaded.spec.hyperparameters.batch_size
    if isinstance(batch, int) and batch > examples:
        raise loaded.error(
            f"batch_size {batch} is more than the {examples} training examples: at most {examples}",
            "hyperparameters",
            "batch_size",
        )


def submit_job(store: Store, experiment: Experiment, job: Job, backend: Backend, data: DatasetSplits) -> None:
    """Prepare, upload (or reuse an upload of the same content), and create the job exactly once."""
    if store.job(job.id).provider_job_id:  # another fto process submitted it meanwhile
        return
    spec = point_spec(experiment.spec, job.backend)  # a sweep point trains with its own hyperparameters
    notice = backend.notice(backend.options)
    notes = ([notice] if notice else []) + backend.ignored_settings(spec)
    fraction = experiment.spec.fractions.get(job.backend)
    if fraction is not None:  # a point of a learning curve: this job trains on a nested subset
        train = subset(data.train, fraction, experiment.spec.seed)
        point = f"learning curve: trains on {len(train)} of {len(data.train)} examples ({fraction:g})"
        marked = JobEvent(created_at=now(), message=point, data={"fraction": fraction, "examples": len(train)})
        store.add_updates(job.id, [marked], [], None)
        data = DatasetSplits(train=train, validation=data.validation, eval=data.eval)
    if notes:
        store.add_updates(job.id, [JobEvent(created_at=now(), level="warning", message=n) for n in notes], [], None)
    try:
        prepared = backend.prepare(spec, data.train, data.validation, experiment_dir(experiment.id) / job.backend)
        digest = _digest(prepared.train, prepared.validation)
        known = store.uploaded(backend.provider_key, digest)  # per provider: sections may share one
        uploaded = None
        if known:  # the same content went to this provider before: reuse it, if the provider still has it
            cached = UploadedData.model_validate_json(known)
            if retry.call(lambda: backend.has_files(cached)):
                uploaded = cached
            else:
                gone = "the provider no longer has the data uploaded earlier: uploading it again"
                store.add_updates(job.id, [JobEvent(created_at=now(), message=gone)], [], None)
        if uploaded is None:
            uploaded = retry.call(lambda: backend.upload(prepared))
            store.save_upload(backend.provider_key, digest, uploaded.model_dump_json())
        quote = retry.call(lambda: backend.price_quote(spec, uploaded))
        if quote:
            store.add_updates(job.id, [JobEvent(created_at=now(), message=quote)], [], None)
        provider_job_id = _create(store, job, backend, spec, uploaded)
    except SubmittedElsewhere:
        return
    except FtoError as exc:
        store.fail(job.id, str(exc))
        return
    except Exception as exc:  # one backend's failure must not stop the others; it is recorded, not hidden
        store.fail(job.id, redact(f"{type(exc).__name__}: {exc}"))
        return
    store.set_submitted(job.id, provider_job_id)


def _create(store: Store, job: Job, backend: Backend, spec: JobSpec, uploaded: UploadedData) -> str:
    """Send the create request; on a retry, or after a crash, first ask whether the provider already has it."""

    def attempt() -> str:
        if not store.claim_submit(job.id):  # submitted by another process, or being submitted there now
            raise SubmittedElsewhere(job.id)
        if store.submit_started(job.id):
            found = _find(backend, job.id)
            if found:
                return found
        store.mark_submitting(job.id)
        return backend.submit(spec, uploaded, job.id)

    return retry.call(attempt)


class SubmittedElsewhere(Exception):
    """Another live fto process is sending this job's create request: it records the answer, not us."""


def _find(backend: Backend, job_id: str) -> str | None:
    try:
        return backend.find(job_id)
    except NotImplementedError:
        raise BackendError(
            f"a create request for {job_id} may have reached the provider, and this backend cannot look jobs up "
            "by fto's id; check the provider's console before resubmitting",
            backend=backend.name,
        ) from None


def _digest(*paths: Path | None) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(path.read_bytes() if path else b"-")
    return h.hexdigest()


def reconcile(store: Store, experiment_id: str | None = None) -> list[Job]:
    """Finish submitting jobs that a crash left without a provider id; never creates one twice."""
    done = []
    experiments: dict[str, Experiment] = {}
    splits: dict[str, DatasetSplits] = {}  # read once per experiment, not once per job
    for job in store.unsubmitted(experiment_id):
        if not store.claim_submit(job.id):
            continue  # submitted meanwhile, or another live fto process is submitting it
        if job.experiment_id not in experiments:
            experiments[job.experiment_id] = store.experiment(job.experiment_id)
        experiment = experiments[job.experiment_id]
        try:
            backend = backend_for(experiment.spec, job.backend)
            found = _find_retried(backend, job.id) if store.submit_started(job.id) else None
        except FtoError as exc:  # cannot tell whether the provider has it: do not risk a second job
            store.fail(job.id, str(exc))
            done.append(store.job(job.id))
            continue
        if found:
            store.set_submitted(job.id, found)
        else:
            if experiment.id not in splits:
                splits[experiment.id] = load_splits(experiment.spec)
            submit_job(store, experiment, job, backend, splits[experiment.id])
        done.append(store.job(job.id))
    return done


def _find_retried(backend: Backend, job_id: str) -> str | None:
    return retry.call(lambda: _find(backend, job_id))
