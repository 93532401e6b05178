"""The poller: one asyncio loop watches any number of jobs across providers until they end.

Per provider it keeps to a concurrency limit and a request rate; per job it polls quickly while the job changes
and backs off (with jitter) while it does not; it honours Retry-After, retries transient errors with backoff and
never a 400. Each job is polled under a lease in the store, so several fto processes never poll the same job.
"""

from __future__ import annotations

import asyncio
import heapq
import random
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from fto.backends.base import Backend
from fto.orchestrator import retry
from fto.orchestrator.errors import BackendError, FtoError
from fto.orchestrator.store import PROCESS, Store
from fto.orchestrator.submit import backend_for, reconcile
from fto.orchestrator.tracking import Tracking
from fto.schemas import Job, JobStatus, ProviderJob, ProviderUpdates

OnTick = Callable[[list[Job]], None]
LEASE_SECONDS = 30.0
BACKOFF = 1.5  # interval growth per unchanged poll
JITTER = 0.1  # ± fraction, so thousands of jobs do not poll in lockstep
FLUSH_AT = 500  # answers buffered before a write, at the latest every tick


class RateLimiter:
    """A token bucket: at most `rate` requests a second, in bursts of at most `burst`."""

    def __init__(self, rate: float, burst: int):
        self.rate, self.capacity, self.tokens, self.stamp = rate, float(burst), float(burst), time.monotonic()

    async def acquire(self) -> None:
        """Wait until one more request fits the rate."""
        while True:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            await asyncio.sleep((1 - self.tokens) / self.rate)


@dataclass
class _Limits:
    """What one provider tolerates, shared by every job sent to it."""

    limiter: RateLimiter
    slots: asyncio.Semaphore
    requests: int = 0


@dataclass
class _Provider:
    backend: Backend
    limits: _Limits


@dataclass(order=True)
class _Due:
    at: float
    job_id: str = field(compare=False)


@dataclass
class _Watch:
    """What the poller keeps in memory about a job it holds the lease of."""

    interval: float
    signature: tuple[object, ...] = ()
    lease_until: float = 0.0  # renewed in the store only when close to running out
    cursor: str | None = None


class Poller:
    """Watches jobs to their end in one asyncio loop, within each provider's concurrency and rate limits."""

    def __init__(self, store: Store, on_tick: OnTick | None = None, tick_every: float = 0.25):
        self.store = store
        self.owner = f"{PROCESS}:{uuid.uuid4().hex[:6]}"  # host:pid:…: who holds a lease, for people too
        self.on_tick, self.tick_every = on_tick, tick_every
        self.backends: dict[str, Backend] = {}  # by backend section: jobs with the same section share one
        self.by_job: dict[str, _Provider] = {}
        self.provider_job_ids: dict[str, str] = {}
        self.limits: dict[str, _Limits] = {}  # by provider
        self.rng = random.Random()
        # Answers are written in batches (one transaction each): the store keeps pace with thousands of jobs.
        # The cursor moves in the same transaction, so a crash before a flush only means asking again.
        self.unwritten: list[tuple[str, ProviderJob, ProviderUpdates]] = []
        self.tracking = Tracking(store)  # what was written goes on to the experiment trackers a job file names
        self.tracked: set[str] = set()  # the jobs whose job file names a tracker

    def flush(self) -> bool:
        """Write the polled states and news gathered since the last flush, in one transaction (True: wrote)."""
        if not self.unwritten:
            return False
        batch, self.unwritten = self.unwritten, []
        self.store.record_polls(batch)
        if self.tracked:
            self.tracking.record([p for p in batch if p[0] in self.tracked])
        return True

    def provider(self, job: Job) -> _Provider:
        """The backend and limits that `job` is polled through (one per provider key)."""
        if job.id not in self.by_job:
            spec = self.store.experiment(job.experiment_id).spec
            if spec.tracking:
                self.tracked.add(job.id)
            section = spec.backends.get(job.backend)
            key = f"{job.backend} {section.model_dump_json() if section else ''}"
            if key not in self.backends:
                self.backends[key] = backend_for(spec, job.backend)
            backend = self.backends[key]
            if backend.provider_key not in self.limits:
                burst = max(1, int(backend.max_requests_per_second))
                self.limits[backend.provider_key] = _Limits(
                    RateLimiter(backend.max_requests_per_second, burst), asyncio.Semaphore(backend.max_concurrency)
                )
            self.by_job[job.id] = _Provider(backend, self.limits[backend.provider_key])
        return self.by_job[job.id]

    @property
    def requests(self) -> int:
        return sum(limits.requests for limits in self.limits.values())

    async def run(self, job_ids: list[str], timeout: float | None = None) -> list[Job]:
        """Poll until every job is terminal (or `timeout` passes); returns the jobs as last seen."""
        await asyncio.to_thread(reconcile, self.store)  # jobs a crash left half-submitted
        deadline = None if timeout is None else time.monotonic() + timeout
        queue: list[_Due] = []
        watches: dict[str, _Watch] = {}
        for job in self.store.jobs_by_id(job_ids):
            if not job.status.terminal:
                watches[job.id] = _Watch(self.provider(job).backend.min_poll_interval)
                heapq.heappush(queue, _Due(time.monotonic(), job.id))
        in_flight: set[asyncio.Task[None]] = set()
        next_tick = 0.0
        news = True  # the first tick shows the jobs as they are
        try:
            while queue or in_flight:
                now = time.monotonic()
                while queue and queue[0].at <= now:
                    due = heapq.heappop(queue)
                    task = asyncio.create_task(self._poll(due.job_id, watches, queue))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                if now >= next_tick or len(self.unwritten) >= FLUSH_AT:
                    news = self.flush() or news
                # The jobs are read again only when this poller wrote, or another process changed the store
                # (SQLite's data_version, PostgreSQL's NOTIFY): watching costs no table reads while nothing happens.
                if self.on_tick and now >= next_tick and (news or self.store.changed()):
                    news = False
                    self.on_tick(self.store.jobs_by_id(job_ids))
                if now >= next_tick:
                    next_tick = now + self.tick_every
                if deadline is not None and now > deadline:
                    break
                wait = queue[0].at - now if queue else 0.05  # nothing due: wait for answers in flight
                await asyncio.sleep(max(0.0, min(wait, self.tick_every)))
        finally:
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)
            self.flush()
            for backend in self.backends.values():
                close = getattr(backend, "aclose", None)
                if close:
                    await close()
            self.store.release_leases(self.owner)
        jobs = self.store.jobs_by_id(job_ids)
        if self.on_tick:
            self.on_tick(jobs)
        return jobs

    async def _poll(self, job_id: str, watches: dict[str, _Watch], queue: list[_Due]) -> None:
        watch = watches[job_id]
        now = time.monotonic()
        if watch.lease_until - now < LEASE_SECONDS / 3:
            job = self.store.job(job_id)  # fresh: another process may have ended it
            if job.status.terminal:
                return
            provider = self.provider(job)
            if job.provider_job_id is None or not self.store.acquire_lease(job_id, self.owner, LEASE_SECONDS):
                # Not ours to poll now (another fto process holds it, or it awaits submission): look later.
                heapq.heappush(queue, _Due(now + provider.backend.max_poll_interval, job_id))
                return
            watch.lease_until, watch.cursor = now + LEASE_SECONDS, self.store.cursor(job_id)
            self.provider_job_ids[job_id] = job.provider_job_id
        provider = self.by_job[job_id]
        try:
            state, updates = await self._ask(provider, self.provider_job_ids[job_id], watch.cursor)
        except (BackendError, FtoError) as exc:  # not retryable, or retries exhausted: the job cannot be followed
            self.unwritten.append((job_id, ProviderJob(status=JobStatus.FAILED, error=str(exc)), ProviderUpdates()))
            return
        except Exception as exc:  # a backend's bug must end the job with its cause, never leave it unwatched
            error = f"{provider.backend.name}: {type(exc).__name__}: {exc}"
            self.unwritten.append((job_id, ProviderJob(status=JobStatus.FAILED, error=error), ProviderUpdates()))
            return
        signature = (state.status, state.fine_tuned_model, state.error)
        changed = signature != watch.signature or bool(updates.events or updates.metrics or updates.checkpoints)
        if changed:  # nothing to write when nothing happened
            self.unwritten.append((job_id, state, updates))
            watch.cursor = updates.cursor or watch.cursor
        watch.signature = signature
        if state.status.terminal:
            return
        backend = provider.backend
        watch.interval = (
            backend.min_poll_interval if changed else min(watch.interval * BACKOFF, backend.max_poll_interval)
        )
        delay = watch.interval * (1 + self.rng.uniform(-JITTER, JITTER))
        heapq.heappush(queue, _Due(time.monotonic() + delay, job_id))

    async def _ask(
        self, provider: _Provider, provider_job_id: str, cursor: str | None
    ) -> tuple[ProviderJob, ProviderUpdates]:
        async def once() -> tuple[ProviderJob, ProviderUpdates]:
            async with provider.limits.slots:
                await provider.limits.limiter.acquire()
                provider.limits.requests += 1
                return await provider.backend.apoll(provider_job_id, cursor)

        return await retry.acall(once)


def wait(store: Store, job_ids: list[str], on_tick: OnTick | None = None, timeout: float | None = None) -> list[Job]:
    """Poll `job_ids` to the end from synchronous code — also code already inside an event loop (a notebook's):
    there the poller's loop runs on a thread of its own while this one waits."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(Poller(store, on_tick).run(job_ids, timeout))
    with ThreadPoolExecutor(1, thread_name_prefix="fto-poll") as pool:
        return pool.submit(lambda: asyncio.run(Poller(store, on_tick).run(job_ids, timeout))).result()
