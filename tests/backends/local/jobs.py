"""Start a job through the backend interface and wait for it, as `fto submit` and the poller would."""

import time

from fto.backends import registry
from fto.schemas import BackendSection, JobSpec, JobStatus

ENDED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


def start(tmp_path, spec: JobSpec, train, validation, job_id: str = "job-test"):
    """Check, prepare, upload and submit, exactly as `fto submit` does; returns (backend, provider job id)."""
    backend = registry.create("local", BackendSection.model_validate(spec.backends["local"].model_dump()))
    backend.check(spec)
    prepared = backend.prepare(spec, train, validation, tmp_path / job_id)
    return backend, backend.submit(spec, backend.upload(prepared), job_id)


def submit(backend, spec: JobSpec, workdir, job_id: str):
    """Any backend: check, split, prepare, upload and submit, as `fto submit` does; returns the provider job id."""
    from fto.orchestrator.data.load import load_splits

    backend.check(spec)
    data = load_splits(spec)
    return backend.submit(spec, backend.upload(backend.prepare(spec, data.train, data.validation, workdir)), job_id)


def wait_for(backend, job_id: str, statuses=ENDED, timeout: float = 180.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = backend.get(job_id)
        if state.status in statuses:
            return state
        time.sleep(0.05)
    raise AssertionError(f"job stayed {state.status} for {timeout}s")
