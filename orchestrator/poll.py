"""The poller: ask each backend about its unfinished jobs until all are terminal, keeping the store current."""

from __future__ import annotations

import time
from collections.abc import Callable

from backends.base import Backend
from orchestrator.errors import BackendError, FtoError
from orchestrator.store import Store
from orchestrator.submit import backend_for
from schemas import Job, JobStatus, ProviderJob

OnTick = Callable[[list[Job]], None]


def poll_once(store: Store, job: Job, backend: Backend) -> Job:
    """Fetch new events and metrics, then the status, and record both."""
    if job.provider_job_id is None:  # never accepted by the provider: nothing to ask
        return store.update_from_provider(
            job.id, ProviderJob(status=JobStatus.FAILED, error=job.error or "never submitted")
        )
    updates = backend.updates(job.provider_job_id, store.cursor(job.id))
    store.add_updates(job.id, updates.events, updates.metrics, updates.cursor)
    state = backend.get(job.provider_job_id)
    if state.status.terminal:  # catch the last events written just before the end
        updates = backend.updates(job.provider_job_id, store.cursor(job.id))
        store.add_updates(job.id, updates.events, updates.metrics, updates.cursor)
    return store.update_from_provider(job.id, state)


def wait(store: Store, job_ids: list[str], on_tick: OnTick | None = None, timeout: float | None = None) -> list[Job]:
    """Poll until every job is terminal (or `timeout` passes); returns the jobs as last seen."""
    backends: dict[str, Backend] = {}
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        jobs = [store.job(i) for i in job_ids]
        for job in jobs:
            if job.status.terminal:
                continue
            key = f"{job.experiment_id}/{job.backend}"
            if key not in backends:
                backends[key] = backend_for(store.experiment(job.experiment_id).spec, job.backend)
            try:
                poll_once(store, job, backends[key])
            except BackendError as exc:
                if not exc.retryable:
                    store.fail(job.id, str(exc))
            except FtoError as exc:
                store.fail(job.id, str(exc))
        jobs = [store.job(i) for i in job_ids]
        if on_tick:
            on_tick(jobs)
        active = [j for j in jobs if not j.status.terminal]
        if not active or (deadline is not None and time.monotonic() > deadline):
            return jobs
        interval = min(backends[f"{j.experiment_id}/{j.backend}"].poll_interval for j in active)
        time.sleep(interval)
