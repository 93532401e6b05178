"""An experiment → one job per backend: check everything first, record the intent, then call providers."""

from __future__ import annotations

from dataclasses import dataclass

from backends import registry
from backends.base import Backend
from orchestrator.config import LoadedJob
from orchestrator.data.load import DatasetSplits, load_splits, save_conversations
from orchestrator.errors import FtoError
from orchestrator.paths import experiment_dir
from orchestrator.secrets import redact
from orchestrator.store import Store
from schemas import Experiment, Job, JobSpec


@dataclass(frozen=True)
class Submitted:
    experiment: Experiment
    jobs: list[Job]
    data: DatasetSplits


def backend_for(spec: JobSpec, name: str) -> Backend:
    return registry.create(name, spec.backends.get(name))


def submit(store: Store, loaded: LoadedJob) -> Submitted:
    """Validate the data once, refuse what a backend cannot do, then submit to each backend in turn.

    Nothing reaches a provider until every check has passed for every chosen backend.
    """
    spec = loaded.spec
    data = load_splits(spec)
    backends = [backend_for(spec, name) for name in loaded.backends]
    for backend in backends:
        backend.check(spec)

    experiment, jobs = store.create_experiment(spec, str(loaded.path), loaded.backends)
    folder = experiment_dir(experiment.id)
    save_conversations(data.eval, folder / "eval.jsonl")
    (folder / "job.yaml").write_text(loaded.path.read_text())

    for job, backend in zip(jobs, backends, strict=True):
        try:
            prepared = backend.prepare(spec, data.train, data.validation, folder / job.backend)
            uploaded = backend.upload(prepared)
            provider_job_id = backend.submit(spec, uploaded, job.id)
        except FtoError as exc:
            store.fail(job.id, str(exc))
            continue
        except Exception as exc:  # one backend's failure must not stop the others; it is recorded, not hidden
            store.fail(job.id, redact(f"{type(exc).__name__}: {exc}"))
            continue
        store.set_submitted(job.id, provider_job_id)
    return Submitted(experiment=experiment, jobs=store.jobs(experiment.id), data=data)
