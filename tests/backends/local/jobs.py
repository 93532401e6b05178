"""Start a local job through the backend interface and wait for it, as the poller would."""

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


def wait_for(backend, job_id: str, statuses=ENDED, timeout: float = 180.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = backend.get(job_id)
        if state.status in statuses:
            return state
        time.sleep(0.05)
    raise AssertionError(f"job stayed {state.status} for {timeout}s")
