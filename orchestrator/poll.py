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
from dataclasses import dataclass, field

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from backends.base import Backend
from orchestrator.errors import BackendError, FtoError
from orchestrator.store import Store
from orchestrator.submit import backend_for, reconcile
from schemas import Job, JobStatus, ProviderJob

OnTick = Callable[[list[Job]], None]
LEASE_SECONDS = 30.0
BACKOFF = 1.5  # interval growth per unchanged poll
JITTER = 0.1  # ± fraction, so thousands of jobs do not poll in lockstep


class RateLimiter:
    """A token bucket: at most `rate` requests a second, in bursts of at most `burst`."""

    def __init__(self, rate: float, burst: int):
        self.rate, self.capacity, self.tokens, self.stamp = rate, float(burst), float(burst), time.monotonic()
        self.paused_until = 0.0  # a provider's Retry-After applies to every request to it

    async def acquire(self) -> None:
        while True:
            now = time.monotonic()
            if now < self.paused_until:
                await asyncio.sleep(self.paused_until - now)
                continue
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            await asyncio.sleep((1 - self.tokens) / self.rate)


@dataclass
class _Provider:
    backend: Backend
    limiter: RateLimiter
    slots: asyncio.Semaphore
    requests: int = 0


@dataclass(order=True)
class _Due:
    at: float
    job_id: str = field(compare=False)


@dataclass
class _Watch:
    interval: float
    signature: tuple[object, ...] = ()


class Poller:
    def __init__(self, store: Store, on_tick: OnTick | None = None, tick_every: float = 0.25):
        self.store = store
        self.owner = f"{uuid.uuid4().hex[:12]}"
        self.on_tick, self.tick_every = on_tick, tick_every
        self.providers: dict[str, _Provider] = {}
        self.rng = random.Random()

    def provider(self, job: Job) -> _Provider:
        key = f"{job.experiment_id}/{job.backend}"
        if key not in self.providers:
            backend = backend_for(self.store.experiment(job.experiment_id).spec, job.backend)
            burst = max(1, int(backend.max_requests_per_second))
            self.providers[key] = _Provider(
                backend, RateLimiter(backend.max_requests_per_second, burst), asyncio.Semaphore(backend.max_concurrency)
            )
        return self.providers[key]

    @property
    def requests(self) -> int:
        return sum(p.requests for p in self.providers.values())

    async def run(self, job_ids: list[str], timeout: float | None = None) -> list[Job]:
        """Poll until every job is terminal (or `timeout` passes); returns the jobs as last seen."""
        await asyncio.to_thread(reconcile, self.store)  # jobs a crash left half-submitted
        deadline = None if timeout is None else time.monotonic() + timeout
        queue: list[_Due] = []
        watches: dict[str, _Watch] = {}
        for job in (self.store.job(i) for i in job_ids):
            if not job.status.terminal:
                watches[job.id] = _Watch(self.provider(job).backend.min_poll_interval)
                heapq.heappush(queue, _Due(time.monotonic(), job.id))
        in_flight: set[asyncio.Task[None]] = set()
        next_tick = 0.0
        try:
            while queue or in_flight:
                now = time.monotonic()
                while queue and queue[0].at <= now:
                    due = heapq.heappop(queue)
                    task = asyncio.create_task(self._poll(due.job_id, watches, queue))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                if self.on_tick and now >= next_tick:
                    self.on_tick([self.store.job(i) for i in job_ids])
                    next_tick = now + self.tick_every
                if deadline is not None and now > deadline:
                    break
                wait = queue[0].at - now if queue else 0.05  # nothing due: wait for answers in flight
                await asyncio.sleep(max(0.0, min(wait, self.tick_every)))
        finally:
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)
            for provider in self.providers.values():
                close = getattr(provider.backend, "aclose", None)
                if close:
                    await close()
            self.store.release_leases(self.owner)
        jobs = [self.store.job(i) for i in job_ids]
        if self.on_tick:
            self.on_tick(jobs)
        return jobs

    async def _poll(self, job_id: str, watches: dict[str, _Watch], queue: list[_Due]) -> None:
        job = self.store.job(job_id)
        if job.status.terminal:
            return
        provider = self.provider(job)
        watch = watches[job_id]
        if job.provider_job_id is None or not self.store.acquire_lease(job_id, self.owner, LEASE_SECONDS):
            # Not ours to poll now (another fto process holds it, or it awaits submission): look again later.
            heapq.heappush(queue, _Due(time.monotonic() + provider.backend.max_poll_interval, job_id))
            return
        try:
            state, updates = await self._ask(provider, job.provider_job_id, self.store.cursor(job_id))
        except BackendError as exc:  # not retryable, or retries exhausted: the job cannot be followed
            self.store.update_from_provider(job_id, ProviderJob(status=JobStatus.FAILED, error=str(exc)))
            return
        except FtoError as exc:
            self.store.update_from_provider(job_id, ProviderJob(status=JobStatus.FAILED, error=str(exc)))
            return
        self.store.add_updates(job_id, updates.events, updates.metrics, updates.cursor)
        self.store.update_from_provider(job_id, state)
        if state.status.terminal:
            return
        signature = (state.status, len(updates.events), len(updates.metrics))
        changed = signature != watch.signature or bool(updates.events or updates.metrics)
        watch.signature = signature
        backend = provider.backend
        watch.interval = (
            backend.min_poll_interval if changed else min(watch.interval * BACKOFF, backend.max_poll_interval)
        )
        delay = watch.interval * (1 + self.rng.uniform(-JITTER, JITTER))
        heapq.heappush(queue, _Due(time.monotonic() + delay, job_id))

    async def _ask(self, provider: _Provider, provider_job_id: str, cursor: str | None):  # type: ignore[no-untyped-def]
        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            asked = getattr(exc, "retry_after", None)
            if asked is not None:
                provider.limiter.paused_until = max(provider.limiter.paused_until, time.monotonic() + asked)
                return asked
            return wait_exponential_jitter(initial=0.2, max=10)(state)

        async for attempt in AsyncRetrying(
            retry=retry_if_exception(lambda e: isinstance(e, BackendError) and e.retryable),
            wait=wait,
            stop=stop_after_attempt(10),
            reraise=True,
        ):
            with attempt:
                async with provider.slots:
                    await provider.limiter.acquire()
                    provider.requests += 1
                    return await provider.backend.apoll(provider_job_id, cursor)
        raise AssertionError("unreachable")


def wait(store: Store, job_ids: list[str], on_tick: OnTick | None = None, timeout: float | None = None) -> list[Job]:
    """Poll `job_ids` to the end from synchronous code."""
    return asyncio.run(Poller(store, on_tick).run(job_ids, timeout))
