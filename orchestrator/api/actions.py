"""What a user does to jobs that exist — cancel, pause, resume — in one place, so `fto cancel` and the dashboard's
buttons behave the same."""

from __future__ import annotations

from fto.orchestrator.errors import FtoError
from fto.orchestrator.store import Store, now
from fto.orchestrator.submit import backend_for
from fto.schemas import Job, JobEvent, JobStatus


def cancel(store: Store, key: str) -> list[Job]:
    """Ask the provider to cancel a job, or every unfinished job of an experiment; returns the jobs asked.

    The store marks them cancelling until a poller sees the provider confirm.
    """
    asked = []
    for job in store.resolve_jobs(key):
        if job.status.terminal or job.provider_job_id is None:
            continue
        backend_for(store.experiment(job.experiment_id).spec, job.backend).cancel(job.provider_job_id)
        store.request_cancel(job.id)
        asked.append(job)
    return asked


def release(store: Store, key: str) -> list[tuple[Job, str]]:
    """Free what the finished jobs of `key` still hold and are billed for at their providers (a deployment serving
    a fine-tuned model); returns (job, what was freed). Recorded on each job as an event."""
    freed = []
    for job in store.resolve_jobs(key):
        if job.status == JobStatus.SUCCEEDED and job.provider_job_id:
            lines = backend_for(store.experiment(job.experiment_id).spec, job.backend).release(job.provider_job_id)
            store.add_updates(job.id, [JobEvent(created_at=now(), message=line) for line in lines], [], None)
            freed += [(job, line) for line in lines]
    return freed


def pause(store: Store, job_id: str) -> Job:
    """Pause a running job, where the provider can."""
    job = store.job(job_id)
    if job.provider_job_id is None or job.status.terminal:
        raise FtoError(f"job {job.id} is not running (it is {job.status.value})")
    backend_for(store.experiment(job.experiment_id).spec, job.backend).pause(job.provider_job_id)
    return job


def resume(store: Store, job_id: str) -> Job:
    """Continue a cancelled, paused or crashed job from its last checkpoint (a poller then follows it)."""
    job = store.job(job_id)
    if job.provider_job_id is None and job.status.value == "failed":
        raise FtoError(
            f"job {job.id} failed before it reached its provider ({job.error}); fix the cause and submit the job "
            "file again (`fto logs` shows what happened)"
        )
    if job.provider_job_id is None:
        raise FtoError(f"job {job.id} was never submitted; `fto wait {job.id}` finishes submitting it")
    backend_for(store.experiment(job.experiment_id).spec, job.backend).resume(job.provider_job_id)
    store.reopen(job.id)
    return job
