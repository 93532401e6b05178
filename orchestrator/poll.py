"""The poller: one asyncio loop watches any number of jobs across providers until they end.

Per provider it keeps to a concurrency limit and a request rate. A provider that lists many jobs in one request
(a batch poll: `Backend.alist`) is asked what changed every `min_poll_interval`, and a job itself only when its
listing changed; the others are asked job by job, quickly while a job changes and backing off (with jitter) while
it does not. Retry-After is honoured, transient errors are retried with backoff, a 400 never. Each job is polled
under a lease in the store, so several fto processes never poll the same job; leases are taken in bulk.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from fto.backends.base import Backend
from fto.orchestrator import retry
from fto.orchestrator.errors import BackendError, FtoError
from fto.orchestrator.store import PROCESS, Store
from fto.orchestrator.submit import backend_for, reconcile
from fto.orchestrator.tracking import Tracking
from fto.schemas import Job, JobListing, JobSpec, JobStatus, ListedJob, ProviderJob, ProviderUpdates

T = TypeVar("T")
OnTick = Callable[[list[Job]], None]
# How long a poll lease lasts unrenewed: how soon another process takes over the jobs of one that died.
LEASE_SECONDS = float(os.environ.get("FTO_LEASE_SECONDS", "30"))
RENEW_EVERY = LEASE_SECONDS / 3
RETRY_LEASES = 2.0  # seconds until asking again for jobs another process holds, or that await submission
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
class _Provider:
    """One provider (an account at an address): its rate, the jobs due a poll of their own, who polls them."""

    lister: Backend  # the backend its listings are asked through (any section of this provider will do)
    limiter: RateLimiter
    ready: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)  # `max_concurrency` workers, and the sweep
    requests: int = 0


@dataclass(order=True)
class _Due:
    at: float
    job_id: str = field(compare=False)


@dataclass
class _Watch:
    """What the poller keeps in memory about a job it holds the lease of."""

    backend: Backend
    provider: _Provider
    provider_job_id: str
    cursor: str | None
    interval: float
    signature: tuple[object, ...] = ()  # of its last poll of its own
    listed: tuple[object, ...] = ()  # of its last listing
    stamped: bool = False  # its listing says when it last changed: it is asked itself only when that moves
    queued: bool = False  # waiting in its provider's queue
    asking: bool = False  # a poll of its own is in flight
    again: bool = False  # asked for while in flight: polled once more after it (never two at once: news twice)


class Poller:
    """Watches jobs to their end in one asyncio loop, within each provider's concurrency and rate limits."""

    def __init__(self, store: Store, on_tick: OnTick | None = None, tick_every: float = 0.25):
        self.store = store
        self.owner = f"{PROCESS}:{uuid.uuid4().hex[:6]}"  # host:pid:…: who holds a lease, for people too
        self.on_tick, self.tick_every = on_tick, tick_every
        self.backends: dict[str, Backend] = {}  # by backend section: jobs with the same section share one
        self.providers: dict[str, _Provider] = {}  # by provider key
        self.waiting: set[str] = set()  # jobs not seen to end yet, held or not
        self.watches: dict[str, _Watch] = {}  # the jobs this poller holds the lease of
        self.due: list[_Due] = []  # when each job polled on its own schedule is asked next
        self.rng = random.Random()
        # Answers are written in batches (one transaction each): the store keeps pace with thousands of jobs.
        # The cursor moves in the same transaction, so a crash before a flush only means asking again. A thread
        # writes them, one batch at a time and in order, so the loop goes on listing and polling meanwhile.
        self.unwritten: list[tuple[str, ProviderJob, ProviderUpdates]] = []
        self.writer: ThreadPoolExecutor | None = None
        self.write_store: Store | None = None  # a connection of its own (SQLite's is not shared across threads)
        self.writing: asyncio.Future[None] | None = None
        self.write_failed: BaseException | None = None
        self.tracking = Tracking(store)  # what was written goes on to the experiment trackers a job file names
        self.tracked: set[str] = set()  # the jobs whose job file names a tracker

    def flush(self) -> bool:
        """Hand the polled states and news gathered since the last flush to the writer thread, to be written in one
        transaction (True: handed). While it writes, they wait: its end hands them on."""
        if self.write_failed is not None:
            raise self.write_failed
        if not self.unwritten or self.writing is not None:
            return False
        if self.writer is None or self.write_store is None:
            self.writer = ThreadPoolExecutor(1, thread_name_prefix="fto-write")
            self.write_store = Store(self.store.location)
        batch, self.unwritten = self.unwritten, []
        self.writing = asyncio.get_running_loop().run_in_executor(self.writer, self.write_store.record_polls, batch)
        self.writing.add_done_callback(functools.partial(self._written, batch))
        return True

    def _written(self, batch: list[tuple[str, ProviderJob, ProviderUpdates]], done: asyncio.Future[None]) -> None:
        self.writing = None
        failure = done.exception() if not done.cancelled() else asyncio.CancelledError()
        if failure is not None:
            self.write_failed = failure  # raised in the loop: the poller stops and releases its jobs to others
            return
        if self.tracked:
            self.tracking.record([p for p in batch if p[0] in self.tracked])
        self.flush()

    async def _drain(self) -> None:
        """Write everything gathered, wait for it, and stop the writer (a write's failure is raised)."""
        try:
            self.flush()
            while self.writing is not None:
                await asyncio.wait([self.writing])
                await asyncio.sleep(0)  # its end's callback hands on what waited
            if self.write_failed is not None:
                raise self.write_failed
        finally:
            if self.writer is not None:
                self.writer.shutdown()
            if self.write_store is not None:
                self.write_store.close()
            self.writer, self.write_store = None, None

    @property
    def requests(self) -> int:
        """Requests sent to providers so far (retries included)."""
        return sum(provider.requests for provider in self.providers.values())

    async def run(self, job_ids: list[str], timeout: float | None = None) -> list[Job]:
        """Poll until every job is terminal (or `timeout` passes); returns the jobs as last seen."""
        await asyncio.to_thread(reconcile, self.store)  # jobs a crash left half-submitted
        deadline = None if timeout is None else time.monotonic() + timeout
        self.waiting = {job.id for job in self.store.jobs_by_id(job_ids) if not job.status.terminal}
        next_tick = next_lease = 0.0
        news = True  # the first tick shows the jobs as they are
        try:
            while self.waiting:
                now = time.monotonic()
                if now >= next_lease and self.writing is not None:
                    next_lease = now + 0.05  # not while this poller's write holds job rows: SKIP LOCKED skips them
                elif now >= next_lease:
                    next_lease = now + (RETRY_LEASES if self._lease() else RENEW_EVERY)
                while self.due and self.due[0].at <= now:
                    self._ready(heapq.heappop(self.due).job_id)
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
                wait = min(self.tick_every, next_lease - now, self.due[0].at - now if self.due else self.tick_every)
                await asyncio.sleep(max(0.0, wait))
        finally:
            tasks = [task for provider in self.providers.values() for task in provider.tasks]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            try:
                await self._drain()
            finally:  # even after a failed write: the jobs go to other pollers, from their stored cursors
                for backend in self.backends.values():
                    close = getattr(backend, "aclose", None)
                    if close:
                        await close()
                self.store.release_leases(self.owner)
        jobs = self.store.jobs_by_id(job_ids)
        if self.on_tick:
            self.on_tick(jobs)
        return jobs

    # leases -------------------------------------------------------------------------------------------

    def _lease(self) -> bool:
        """Take and renew the leases of every waiting job in bulk; watch the jobs newly held, forget those lost.
        True when some are held by another process or not submitted yet (worth asking again soon)."""
        held = self.store.acquire_leases(sorted(self.waiting), self.owner, LEASE_SECONDS)
        for job_id in [job_id for job_id in self.watches if job_id not in held]:
            del self.watches[job_id]  # its lease lapsed and another poller took it
        new = self.store.jobs_by_id([job_id for job_id in held if job_id not in self.watches])
        specs = self.store.specs([job.experiment_id for job in new])
        for job in new:
            self._watch(job, specs[job.experiment_id], *held[job.id])
        unheld = sorted(self.waiting - held.keys())
        if unheld:  # another process may have seen them end
            self.waiting -= {job.id for job in self.store.jobs_by_id(unheld) if job.status.terminal}
        return bool(self.waiting - held.keys())

    def _watch(self, job: Job, spec: JobSpec, provider_job_id: str, cursor: str | None) -> None:
        if spec.tracking:
            self.tracked.add(job.id)
        section = spec.backends.get(job.backend)
        key = f"{job.backend} {section.model_dump_json() if section else ''}"
        if key not in self.backends:
            self.backends[key] = backend_for(spec, job.backend)
        backend = self.backends[key]
        watch = _Watch(backend, self._provider(backend), provider_job_id, cursor, backend.min_poll_interval)
        self.watches[job.id] = watch
        if not backend.batch_poll:
            self._ready(job.id)  # a first poll of its own: its news since the stored cursor (batch: after a listing)

    def _provider(self, backend: Backend) -> _Provider:
        if backend.provider_key not in self.providers:
            burst = max(1, int(backend.max_requests_per_second))
            provider = _Provider(backend, RateLimiter(backend.max_requests_per_second, burst))
            provider.tasks = [asyncio.create_task(self._work(provider)) for _ in range(backend.max_concurrency)]
            if backend.batch_poll:
                provider.tasks.append(asyncio.create_task(self._sweep(provider)))
            self.providers[backend.provider_key] = provider
        return self.providers[backend.provider_key]

    def _done(self, job_id: str) -> None:
        self.watches.pop(job_id, None)
        self.waiting.discard(job_id)

    # polls of one job ---------------------------------------------------------------------------------

    def _ready(self, job_id: str) -> None:
        """Queue a poll of the job itself (once, however many reasons there are)."""
        watch = self.watches.get(job_id)
        if watch is not None and watch.asking:
            watch.again = True
        elif watch is not None and not watch.queued:
            watch.queued = True
            watch.provider.ready.put_nowait(job_id)

    async def _work(self, provider: _Provider) -> None:
        while True:
            job_id = await provider.ready.get()
            watch = self.watches.get(job_id)
            if watch is not None:
                watch.queued, watch.asking = False, True
                try:
                    await self._poll(job_id, watch)
                finally:
                    watch.asking = False
                if watch.again:
                    watch.again = False
                    self._ready(job_id)

    async def _poll(self, job_id: str, watch: _Watch) -> None:
        try:
            state, updates = await self._ask(
                watch.provider, lambda: watch.backend.apoll(watch.provider_job_id, watch.cursor)
            )
        except (BackendError, FtoError) as exc:  # not retryable, or retries exhausted: the job cannot be followed
            return self._unfollowed(job_id, watch, str(exc))
        except Exception as exc:  # a backend's bug must end the job with its cause, never leave it unwatched
            return self._unfollowed(job_id, watch, f"{watch.backend.name}: {type(exc).__name__}: {exc}")
        if self.watches.get(job_id) is not watch:
            return  # its lease went to another poller meanwhile
        changed = self._record(job_id, watch, state, updates)
        if state.status.terminal or watch.stamped:
            return  # its listing tells when to ask again
        backend = watch.backend
        watch.interval = (
            backend.min_poll_interval if changed else min(watch.interval * BACKOFF, backend.max_poll_interval)
        )
        delay = watch.interval * (1 + self.rng.uniform(-JITTER, JITTER))
        heapq.heappush(self.due, _Due(time.monotonic() + delay, job_id))

    def _record(self, job_id: str, watch: _Watch, state: ProviderJob, updates: ProviderUpdates) -> bool:
        """Keep a poll's answer for the next write, if anything changed (True); a job's end comes with its last
        news, in one write, so a crash never leaves an ended job without them."""
        signature = (state.status, state.fine_tuned_model, state.error)
        changed = signature != watch.signature or bool(updates.events or updates.metrics or updates.checkpoints)
        if changed:  # nothing to write when nothing happened
            self.unwritten.append((job_id, state, updates))
            watch.cursor = updates.cursor or watch.cursor
        watch.signature = signature
        if state.status.terminal:
            self._done(job_id)
        return changed

    def _unfollowed(self, job_id: str, watch: _Watch, error: str) -> None:
        self.unwritten.append((job_id, ProviderJob(status=JobStatus.FAILED, error=error), ProviderUpdates()))
        self._done(job_id)

    # batch polls --------------------------------------------------------------------------------------

    async def _sweep(self, provider: _Provider) -> None:
        """Every `min_poll_interval`, list what changed at the provider; queue a poll of each job that did."""
        changed_since: str | None = None
        while True:
            started = time.monotonic()
            mine = {w.provider_job_id: job_id for job_id, w in self.watches.items() if w.provider is provider}
            if mine:
                try:
                    changed_since = await self._list(provider, changed_since, mine)
                except Exception:  # the listing failed after its retries: each job back on a schedule of its own
                    for job_id in mine.values():
                        self._unstamp(job_id)
                for job_id in mine.values():  # jobs new to this poller, unchanged since the last listing
                    watch = self.watches.get(job_id)
                    if watch is not None and not watch.listed:
                        watch.listed = ("not listed",)
                        self._ready(job_id)  # a first poll of its own: its news since the stored cursor
            await asyncio.sleep(max(0.0, provider.lister.min_poll_interval - (time.monotonic() - started)))

    async def _list(self, provider: _Provider, changed_since: str | None, mine: dict[str, str]) -> str | None:
        """One listing, page by page; returns the provider's clock at its start (what changed after it comes next)."""
        page: str | None = None
        as_of: str | None = None
        cursors = {provider_job_id: self.watches[job_id].cursor for provider_job_id, job_id in mine.items()}
        while True:
            ask = functools.partial(provider.lister.alist, changed_since, page, cursors)
            listing: JobListing = await self._ask(provider, ask)
            as_of = as_of or listing.as_of
            for provider_job_id, listed in listing.jobs.items():
                job_id = mine.get(provider_job_id)
                watch = self.watches.get(job_id) if job_id is not None else None
                if watch is None or job_id is None:
                    continue
                if watch.asking or watch.cursor != cursors[provider_job_id]:
                    self._ready(job_id)  # its own poll answers meanwhile: recording both would repeat news
                else:
                    self._listed(job_id, watch, listed)
            self.flush()  # what the page brought, written while the next is asked for
            if listing.next_page is None:
                return as_of
            page = listing.next_page

    def _listed(self, job_id: str, watch: _Watch, listed: ListedJob) -> None:
        state = listed.state
        watch.stamped = listed.changed is not None
        signature = (state.status, state.fine_tuned_model, state.error, listed.changed)
        if signature == watch.listed:
            return
        watch.listed = signature
        if listed.updates is not None:  # the listing carries the job's news: as good as a poll of its own
            self._record(job_id, watch, state, listed.updates)
        else:
            self._ready(job_id)  # for its news (and, at its end, its last news with it)

    def _unstamp(self, job_id: str) -> None:
        watch = self.watches.get(job_id)
        if watch is not None and watch.stamped:
            watch.stamped = False
            heapq.heappush(self.due, _Due(time.monotonic() + watch.interval, job_id))

    async def _ask(self, provider: _Provider, request: Callable[[], Awaitable[T]]) -> T:
        async def once() -> T:
            await provider.limiter.acquire()
            provider.requests += 1
            return await request()

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
