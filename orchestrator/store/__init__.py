"""The durable job store: SQLite under $FTO_HOME by default, or PostgreSQL shared by a team (FTO_STORE).

One Store, two engines (store/sqlite.py, store/postgres.py); the rest of fto does not know which it has. The
schema is a numbered migration list (store/migrations.py) both engines apply on start.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from fto.orchestrator.errors import ConfigError, NotFoundError
from fto.orchestrator.paths import fto_home
from fto.orchestrator.secrets import redact, redactor
from fto.orchestrator.store.database import Database, Row, Tx
from fto.orchestrator.store.migrations import migrate
from fto.schemas import (
    Checkpoint,
    Completion,
    Experiment,
    Job,
    JobEvent,
    JobSpec,
    JobStatus,
    Metric,
    ProviderJob,
    ProviderUpdates,
)

if TYPE_CHECKING:
    from fto.schemas.results import Target

Method = TypeVar("Method", bound=Callable[..., Any])
# Who this process is, in submission claims: a claim of a dead process on this machine is taken over at once.
PROCESS = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
CLAIM_SECONDS = 120.0  # a create request, with its retries, is over well within this


def store_location(given: str | Path | None = None) -> str:
    """Where the store is: the argument, else FTO_STORE, else `store:` in $FTO_HOME/config.yaml, else SQLite
    (fto.db under FTO_HOME)."""
    if given:
        return str(given)
    if os.environ.get("FTO_STORE"):
        return os.environ["FTO_STORE"]
    config = fto_home() / "config.yaml"
    if config.is_file():
        import yaml

        try:
            data = yaml.safe_load(config.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"not YAML: {exc}", file=str(config)) from None
        if isinstance(data, dict) and data.get("store"):
            return str(data["store"])
    return str(fto_home() / "fto.db")


def open_database(location: str) -> Database:
    """The engine for a location: postgresql://… (or postgres://…) is PostgreSQL; anything else a SQLite file."""
    if location.startswith(("postgresql://", "postgres://")):
        try:
            from fto.orchestrator.store.postgres import PostgresDatabase
        except ImportError:
            raise ConfigError(
                "a PostgreSQL store needs psycopg: pip install 'fto[postgres]'", field="FTO_STORE"
            ) from None
        return PostgresDatabase(location)
    from fto.orchestrator.store.sqlite import SQLiteDatabase

    return SQLiteDatabase(Path(location.removeprefix("sqlite:///")))


def _retried(method: Method) -> Method:
    """A Store call as one unit the engine may retry while its server is unreachable."""

    @functools.wraps(method)
    def call(self: Store, *args: Any, **kwargs: Any) -> Any:
        return self.db.run(lambda: method(self, *args, **kwargs))

    return call  # type: ignore[return-value]


def _checkpoint_event(checkpoint: Checkpoint) -> JobEvent:
    """Checkpoints are kept as events: `fto logs` shows them, and their data names the model to query."""
    return JobEvent(
        created_at=checkpoint.created_at or now(),
        message=f"checkpoint at step {checkpoint.step}: {checkpoint.model}",
        data={"checkpoint": checkpoint.model, "step": checkpoint.step, "metrics": checkpoint.metrics},
    )


_EVENT_COLUMNS = ("job_id", "seq", "created_at", "level", "message", "data")
_METRIC_COLUMNS = ("job_id", "step", "data")
_STATE_COLUMNS = ("id", "status", "base_model", "fine_tuned_model", "trained_tokens", "error", "updated_at", "cursor")
_ENDED = "(" + ", ".join(f"'{status.value}'" for status in JobStatus if status.terminal) + ")"
# A cancel asked for stays visible until the provider says the job ended; the first end stamps finished_at; a
# poll without a value (a model name, a cursor) keeps the one stored.
_SET_STATE = f"""status = CASE WHEN jobs.status = 'cancelling' AND new.status NOT IN {_ENDED} THEN jobs.status
   ELSE new.status END,
   base_model = COALESCE(new.base_model, jobs.base_model),
   fine_tuned_model = COALESCE(new.fine_tuned_model, jobs.fine_tuned_model),
   trained_tokens = COALESCE(new.trained_tokens, jobs.trained_tokens),
   error = new.error, updated_at = new.updated_at,
   finished_at = CASE WHEN new.status IN {_ENDED} AND jobs.finished_at IS NULL THEN new.updated_at
   ELSE jobs.finished_at END,
   cursor = COALESCE(new.cursor, jobs.cursor)"""


def _in_chunks(keys: list[str]) -> Iterator[tuple[list[str], str]]:
    """`keys` 500 at a time, each with its `?, ?, …` for an `IN (…)` (SQLite caps the parameters of a statement)."""
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        yield chunk, ", ".join("?" * len(chunk))


def _event_row(job_id: str, seq: int, event: JobEvent, mask: Callable[[str], str]) -> tuple[Any, ...]:
    data = mask(json.dumps(event.data)) if event.data else "{}"
    return (job_id, seq, event.created_at.isoformat(), event.level, mask(event.message), data)


def _metric_row(job_id: str, metric: Metric, seen: str) -> tuple[Any, ...]:
    """A metric's row; one without a time gets when we learnt of it (enough to estimate the time left)."""
    data = metric.model_dump_json(exclude_none=True)  # an object, never empty: `step` is required
    if metric.created_at is None:  # added to the JSON: a copy of the model to dump took 4× as long
        data = f'{data[:-1]},"created_at":"{seen}"}}'
    return (job_id, metric.step, data)


def _state_rows(polls: list[tuple[str, ProviderJob, str | None]], mask: Callable[[str], str]) -> list[list[Any]]:
    """Rows of _STATE_COLUMNS, one per job: of two answers for one job in a batch, the later wins, keeping what it
    lacks (a model name, a cursor) from the earlier."""
    stamp = now().isoformat()
    rows: dict[str, list[Any]] = {}
    for job_id, state, cursor in polls:
        error = mask(state.error) if state.error else None
        row = [job_id, state.status.value, state.base_model, state.fine_tuned_model, state.trained_tokens, error,
               stamp, cursor]  # fmt: skip
        earlier = rows.get(job_id)
        if earlier is not None:
            row[2:5] = [new if new is not None else old for new, old in zip(row[2:5], earlier[2:5], strict=True)]
            row[7] = cursor if cursor is not None else earlier[7]
        rows[job_id] = row
    return list(rows.values())


def now() -> datetime:
    """The current time, in UTC."""
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    """A short random id with a readable prefix (exp-…, job-…)."""
    return f"{prefix}-{secrets.token_hex(5)}"


_TERMINAL = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class Store:
    """Experiments, jobs, their events and metrics, and eval results."""

    def __init__(self, location: str | Path | None = None):
        self.location = store_location(location)
        self.db = open_database(self.location)
        self.path: Path | None = Path(self.db.where) if self.db.dialect == "sqlite" else None
        self.db.run(lambda: migrate(self.db))

    def close(self) -> None:
        """Close the database connection(s)."""
        self.db.close()

    def changed(self) -> bool:
        """Whether another process changed the store since the last call (no table is read)."""
        return self.db.changed()

    # jobs created through `fto serve`'s API ------------------------------------------------------------

    @_retried
    def save_serve_job(self, job_id: str, created_at: int, request: dict[str, Any]) -> None:
        """Keep (or update) what a client asked of a `fto serve` job."""
        with self.db.tx() as tx:
            tx.execute(
                "INSERT INTO serve_jobs (id, created_at, request) VALUES (?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET request = excluded.request",
                (job_id, created_at, json.dumps(request)),
            )

    @_retried
    def serve_job(self, job_id: str) -> dict[str, Any] | None:
        """What a client asked of a `fto serve` job, or None."""
        row = self.db.one("SELECT request FROM serve_jobs WHERE id = ?", (job_id,))
        return json.loads(row["request"]) if row else None

    @_retried
    def serve_jobs(self) -> list[dict[str, Any]]:
        """Every `fto serve` job's request, newest first."""
        order = self.db.ordering
        rows = self.db.read(f"SELECT request FROM serve_jobs ORDER BY created_at DESC, {order} DESC")
        return [json.loads(row["request"]) for row in rows]

    # experiments ---------------------------------------------------------------------------------

    @_retried
    def create_experiment(
        self, spec: JobSpec, spec_path: str | None, backends: list[str]
    ) -> tuple[Experiment, list[Job]]:
        """Record the experiment and one pending job per backend, before any provider is called."""
        created = now()
        experiment = Experiment(id=new_id("exp"), name=spec.name, spec=spec, spec_path=spec_path, created_at=created)
        jobs = [
            Job(id=new_id("job"), experiment_id=experiment.id, backend=b, created_at=created, updated_at=created)
            for b in backends
        ]
        with self.db.tx() as tx:
            tx.execute(
                "INSERT INTO experiments (id, name, spec, spec_path, created_at) VALUES (?, ?, ?, ?, ?)",
                (experiment.id, spec.name, spec.model_dump_json(), spec_path, created.isoformat()),
            )
            stamp = created.isoformat()
            for job in jobs:
                tx.execute(
                    "INSERT INTO jobs (id, experiment_id, backend, status, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (job.id, job.experiment_id, job.backend, job.status.value, stamp, stamp),
                )
                tx.notify(job.id)
        return experiment, jobs

    @_retried
    def experiment(self, key: str) -> Experiment:
        """By id, by name (the latest experiment of that name), or by a unique prefix of its id (as git does)."""
        row = (
            self.db.one("SELECT * FROM experiments WHERE id = ?", (key,))
            or self.db.one("SELECT * FROM experiments WHERE name = ? ORDER BY created_at DESC LIMIT 1", (key,))
            or self._by_prefix("experiments", "exp-", key)
        )
        if row is None:
            raise NotFoundError(f"no experiment {key!r} in {self.db.where}")
        return _experiment(row)

    @_retried
    def specs(self, experiment_ids: list[str]) -> dict[str, JobSpec]:
        """The job files of many experiments by id, in one query per 500; identical files are parsed once (and
        shared: read them, do not change them)."""
        ids = sorted(set(experiment_ids))
        parsed: dict[str, JobSpec] = {}
        found: dict[str, JobSpec] = {}
        for chunk, marks in _in_chunks(ids):
            for row in self.db.read(f"SELECT id, spec FROM experiments WHERE id IN ({marks})", chunk):
                if row["spec"] not in parsed:
                    parsed[row["spec"]] = JobSpec.model_validate_json(row["spec"])
                found[row["id"]] = parsed[row["spec"]]
        return found

    def _by_prefix(self, table: str, kind: str, key: str) -> Row | None:
        """The one row whose id starts with `key` (with or without its `kind` prefix); ambiguity is an error."""
        pattern = key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self.db.read(
            f"SELECT * FROM {table} WHERE id LIKE ? ESCAPE '\\' OR id LIKE ? ESCAPE '\\' LIMIT 6",
            (pattern, kind + pattern),
        )
        if len(rows) > 1:
            shown = ", ".join(row["id"] for row in rows[:5])
            raise NotFoundError(f"{key!r} is the start of several ids ({shown}…): give more of it")
        return rows[0] if rows else None

    @_retried
    def latest_experiment(self) -> Experiment:
        """The experiment started last."""
        row = self.db.one("SELECT * FROM experiments ORDER BY created_at DESC LIMIT 1")
        if row is None:
            raise NotFoundError(f"no experiments yet in {self.db.where}; start one with `fto run JOB.yaml`")
        return _experiment(row)

    @_retried
    def experiment_names(self, limit: int = 20) -> list[tuple[str, str, datetime]]:
        """(id, name, created) of the most recent experiments, newest first, without reading their job files."""
        rows = self.db.read("SELECT id, name, created_at FROM experiments ORDER BY created_at DESC LIMIT ?", (limit,))
        return [(r["id"], r["name"], datetime.fromisoformat(r["created_at"])) for r in rows]

    @_retried
    def experiments(self, limit: int | None = 20) -> list[Experiment]:
        """The most recent experiments, newest first (all of them with `limit=None`)."""
        sql = "SELECT * FROM experiments ORDER BY created_at DESC"
        rows = self.db.read(sql + " LIMIT ?", (limit,)) if limit else self.db.read(sql)
        return [_experiment(r) for r in rows]

    # jobs ----------------------------------------------------------------------------------------

    @_retried
    def job(self, job_id: str) -> Job:
        """One job by id, or by a unique prefix of its id."""
        row = self.db.one("SELECT * FROM jobs WHERE id = ?", (job_id,)) or self._by_prefix("jobs", "job-", job_id)
        if row is None:
            raise NotFoundError(f"no job {job_id!r} in {self.db.where}")
        return _job(row)

    @_retried
    def jobs_by_id(self, job_ids: list[str]) -> list[Job]:
        """The jobs with these ids, in the order asked."""
        found: dict[str, Job] = {}
        for chunk, marks in _in_chunks(job_ids):
            rows = self.db.read(f"SELECT * FROM jobs WHERE id IN ({marks})", chunk)
            found.update((r["id"], _job(r)) for r in rows)
        return [found[i] for i in job_ids]

    @_retried
    def jobs(self, experiment_id: str | None = None, active_only: bool = False) -> list[Job]:
        """Jobs, of one experiment or all; only unfinished ones with `active_only`."""
        sql, args = "SELECT * FROM jobs", []
        clauses = []
        if experiment_id:
            clauses.append("experiment_id = ?")
            args.append(experiment_id)
        if active_only:
            terminal = [s.value for s in JobStatus if s.terminal]
            clauses.append(f"status NOT IN ({','.join('?' * len(terminal))})")
            args.extend(terminal)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        return [_job(r) for r in self.db.read(sql + f" ORDER BY created_at, {self.db.ordering}", args)]

    @_retried
    def status_counts(self, experiment_ids: list[str]) -> dict[str, dict[str, int]]:
        """Jobs per status of each experiment, counted by the database."""
        found: dict[str, dict[str, int]] = {e: {} for e in experiment_ids}
        for chunk, marks in _in_chunks(experiment_ids):
            sql = (
                f"SELECT experiment_id, status, COUNT(*) AS n FROM jobs WHERE experiment_id IN ({marks}) GROUP BY 1, 2"
            )
            for r in self.db.read(sql, chunk):
                found[r["experiment_id"]][r["status"]] = int(r["n"])
        return found

    @_retried
    def recent_jobs(self, limit: int) -> list[Job]:
        """The `limit` jobs made last, oldest of them first (one indexed query however large the store)."""
        rows = self.db.read(f"SELECT * FROM jobs ORDER BY created_at DESC, {self.db.ordering} DESC LIMIT ?", (limit,))
        return [_job(r) for r in reversed(rows)]

    def resolve_jobs(self, key: str | None) -> list[Job]:
        """A job id, an experiment id or name, or (None) every job that has not finished."""
        if key is None:
            return self.jobs(active_only=True)
        if key.startswith("job-"):
            return [self.job(key)]
        if not key.startswith("exp-") and self.db.run(lambda: self._by_prefix("jobs", "job-", key)) is not None:
            return [self.job(key)]
        return self.jobs(self.experiment(key).id)

    @_retried
    def claim_submit(self, job_id: str) -> bool:
        """Take the right to submit the job; False when it is submitted already, or while another live process
        holds the claim. A claim lapses after CLAIM_SECONDS, or at once when its process (on this machine) is gone.
        """
        clock = time.time()
        with self.db.tx() as tx:
            rows = tx.read(
                f"SELECT provider_job_id, submit_owner, submit_until FROM jobs WHERE id = ?{self.db.lock}", (job_id,)
            )
            if not rows or rows[0]["provider_job_id"]:
                return False
            owner, until = rows[0]["submit_owner"], rows[0]["submit_until"]
            if owner and owner != PROCESS and until and until > clock and _alive(owner):
                return False
            tx.execute(
                "UPDATE jobs SET submit_owner = ?, submit_until = ? WHERE id = ?",
                (PROCESS, clock + CLAIM_SECONDS, job_id),
            )
        return True

    @_retried
    def mark_submitting(self, job_id: str) -> None:
        """Record that a create request is about to be sent: after a crash, the provider must be asked first."""
        with self.db.tx() as tx:
            tx.execute("UPDATE jobs SET submit_started_at = ? WHERE id = ?", (now().isoformat(), job_id))

    @_retried
    def submit_started(self, job_id: str) -> bool:
        """Whether a create request for the job may have been sent (so a retry must look first)."""
        row = self.db.one("SELECT submit_started_at FROM jobs WHERE id = ?", (job_id,))
        return bool(row and row["submit_started_at"])

    @_retried
    def unsubmitted(self, experiment_id: str | None = None) -> list[Job]:
        """Jobs recorded but never acknowledged by their provider (a crash mid-submit, or never reached)."""
        sql = "SELECT * FROM jobs WHERE provider_job_id IS NULL AND status = ?"
        args: list[Any] = [JobStatus.PENDING.value]
        if experiment_id:
            sql += " AND experiment_id = ?"
            args.append(experiment_id)
        return [_job(r) for r in self.db.read(sql + f" ORDER BY created_at, {self.db.ordering}", args)]

    @_retried
    def acquire_leases(self, job_ids: list[str], owner: str, seconds: float) -> dict[str, tuple[str, str | None]]:
        """Take (or renew) the right to poll jobs, so two fto processes never poll the same one: one statement per
        500 jobs, all in one transaction. Returns the jobs `owner` now holds, each with its provider's id and cursor.

        Left out: jobs not yet submitted, jobs ended (unless `owner` holds them already: their last news may still be
        on its way), and jobs another owner's lease still covers. PostgreSQL skips a row another transaction has
        locked (SKIP LOCKED) instead of waiting for it."""
        clock = time.time()
        skip = " SKIP LOCKED" if self.db.lock else ""
        held: dict[str, tuple[str, str | None]] = {}
        with self.db.tx() as tx:
            for chunk, marks in _in_chunks(job_ids):
                rows = tx.read(
                    "UPDATE jobs SET lease_owner = ?, lease_until = ? WHERE id IN (SELECT id FROM jobs WHERE "
                    f"id IN ({marks}) AND provider_job_id IS NOT NULL "
                    "AND (status NOT IN (?, ?, ?) OR lease_owner = ?) "
                    f"AND (lease_owner IS NULL OR lease_owner = ? OR lease_until < ?){self.db.lock}{skip}) "
                    "RETURNING id, provider_job_id, cursor",
                    (owner, clock + seconds, *chunk, *(s.value for s in _TERMINAL), owner, owner, clock),
                )
                held.update((row["id"], (row["provider_job_id"], row["cursor"])) for row in rows)
        return held

    @_retried
    def release_dead_leases(self, job_ids: list[str]) -> int:
        """Free the poll leases of `job_ids` held by processes of this machine that no longer run (an `fto run`
        killed with -9), so a status refresh polls those jobs now rather than when the leases lapse."""
        owners: set[str] = set()
        for chunk, marks in _in_chunks(job_ids):
            rows = self.db.read(f"SELECT DISTINCT lease_owner FROM jobs WHERE id IN ({marks}) AND lease_owner IS NOT "
                                "NULL", chunk)  # fmt: skip
            owners.update(row["lease_owner"] for row in rows)
        dead = [owner for owner in owners if not _alive(owner)]
        for owner in dead:
            self.release_leases(owner)
        return len(dead)

    @_retried
    def release_leases(self, owner: str) -> None:
        """Give up every poll lease `owner` holds, so other pollers take the jobs at once."""
        with self.db.tx() as tx:
            tx.execute("UPDATE jobs SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?", (owner,))

    @_retried
    def uploaded(self, backend: str, digest: str) -> str | None:
        """What `backend` called a file with this content digest when it was uploaded, if it was."""
        row = self.db.one("SELECT uploaded FROM uploads WHERE backend = ? AND digest = ?", (backend, digest))
        return row["uploaded"] if row else None

    @_retried
    def save_upload(self, backend: str, digest: str, uploaded: str) -> None:
        """Remember the provider's name for an uploaded file, by content digest."""
        with self.db.tx() as tx:
            tx.execute(
                "INSERT INTO uploads (backend, digest, uploaded, created_at) VALUES (?, ?, ?, ?) ON CONFLICT "
                "(backend, digest) DO UPDATE SET uploaded = excluded.uploaded, created_at = excluded.created_at",
                (backend, digest, uploaded, now().isoformat()),
            )

    @_retried
    def claim_notification(self, experiment_id: str) -> bool:
        """True once per experiment: whoever claims it sends the 'finished' notification."""
        with self.db.tx() as tx:
            changed = tx.execute(
                "INSERT INTO notifications (experiment_id, sent_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (experiment_id, now().isoformat()),
            )
        return changed == 1

    @_retried
    def set_submitted(self, job_id: str, provider_job_id: str) -> None:
        """Record the provider's id of a submitted job."""
        with self.db.tx() as tx:
            tx.execute(
                "UPDATE jobs SET provider_job_id = ?, status = ?, updated_at = ?, submit_owner = NULL "
                "WHERE id = ? AND provider_job_id IS NULL",  # a job already submitted (and maybe ended) stays as it is
                (provider_job_id, JobStatus.QUEUED.value, now().isoformat(), job_id),
            )
            tx.notify(job_id)

    @_retried
    def request_cancel(self, job_id: str) -> None:
        """Record at once that a cancel was asked (status cancelling, an event), before the provider confirms."""
        with self.db.tx() as tx:
            tx.execute(
                "UPDATE jobs SET status = ?, updated_at = ? WHERE id = ? AND status NOT IN (?, ?, ?)",
                (JobStatus.CANCELLING.value, now().isoformat(), job_id, *(s.value for s in _TERMINAL)),
            )
            self._append(
                tx, job_id, [JobEvent(created_at=now(), level="warning", message="cancel requested")], [], None
            )

    @_retried
    def update_from_provider(self, job_id: str, state: ProviderJob) -> Job:
        """Record the provider's view; the first terminal status stamps finished_at."""
        with self.db.tx() as tx:
            self._update_state(tx, job_id, state)
        return self.job(job_id)

    @_retried
    def record_polls(self, polls: list[tuple[str, ProviderJob, ProviderUpdates]]) -> None:
        """Polls' news (events, metrics, cursor) and the jobs' states, in one transaction: events, metrics and
        states in bulk (COPY on PostgreSQL): a flush of thousands of jobs costs a few round trips."""
        masked = redactor()  # the environment's secrets looked up once for the whole batch
        with self.db.tx() as tx:
            news = [
                (job_id, updates.events + [_checkpoint_event(c) for c in updates.checkpoints], updates.metrics)
                for job_id, _, updates in polls
            ]
            self._lock_jobs(tx, [job_id for job_id, _, _ in polls])
            self._insert_news(tx, news, masked)
            states = _state_rows([(job_id, state, updates.cursor) for job_id, state, updates in polls], masked)
            tx.update_rows("jobs", "id", _STATE_COLUMNS, states, _SET_STATE)
            for job_id, _, _ in polls:
                tx.notify(job_id)

    def _insert_news(
        self, tx: Tx, news: list[tuple[str, list[JobEvent], list[Metric]]], mask: Callable[[str], str]
    ) -> None:
        """Jobs' new events (numbered after each job's last: the caller holds their rows, _lock_jobs) and metrics
        (a step's last value wins), in bulk."""
        last = self._last_seqs(tx, [job_id for job_id, events, _ in news if events])
        rows = []
        for job_id, events, _ in news:
            for event in events:
                last[job_id] = last.get(job_id, 0) + 1
                rows.append(_event_row(job_id, last[job_id], event, mask))
        tx.insert_rows("events", _EVENT_COLUMNS, rows)
        seen = now().isoformat()
        metrics = [_metric_row(job_id, metric, seen) for job_id, _, metrics in news for metric in metrics]
        tx.insert_rows("metrics", _METRIC_COLUMNS, metrics, key=("job_id", "step"))

    def _last_seqs(self, tx: Tx, job_ids: list[str]) -> dict[str, int]:
        """Each job's last event number (jobs without events are absent); its rows locked by _lock_jobs."""
        last: dict[str, int] = {}
        for chunk, marks in _in_chunks(sorted(set(job_ids))):
            rows = tx.read(
                f"SELECT job_id, MAX(seq) AS seq FROM events WHERE job_id IN ({marks}) GROUP BY job_id", chunk
            )
            last |= {r["job_id"]: r["seq"] for r in rows}
        return last

    def _lock_jobs(self, tx: Tx, job_ids: list[str]) -> None:
        """Numbering events reads each job's last one: no other writer for these jobs meanwhile (in id order, so
        two writers never wait on each other). SQLite's write transaction is lock enough."""
        if not self.db.lock:
            return
        for chunk, marks in _in_chunks(sorted(set(job_ids))):
            tx.read(f"SELECT id FROM jobs WHERE id IN ({marks}) ORDER BY id{self.db.lock}", chunk)

    def _update_state(self, tx: Tx, job_id: str, state: ProviderJob) -> None:
        tx.update_rows("jobs", "id", _STATE_COLUMNS, _state_rows([(job_id, state, None)], redact), _SET_STATE)
        tx.notify(job_id)

    @_retried
    def reopen(self, job_id: str) -> None:
        """A resumed job is unfinished again."""
        with self.db.tx() as tx:
            tx.execute(
                "UPDATE jobs SET status = ?, error = NULL, finished_at = NULL, updated_at = ? WHERE id = ?",
                (JobStatus.QUEUED.value, now().isoformat(), job_id),
            )
            tx.notify(job_id)

    def fail(self, job_id: str, error: str) -> None:
        """Mark a job failed with its cause, which its events tell too (`fto logs`)."""
        self.add_updates(job_id, [JobEvent(created_at=now(), level="error", message=redact(error))], [], None)
        self.update_from_provider(job_id, ProviderJob(status=JobStatus.FAILED, error=error))

    # events and metrics --------------------------------------------------------------------------

    @_retried
    def add_updates(self, job_id: str, events: list[JobEvent], metrics: list[Metric], cursor: str | None) -> None:
        """Append events and metrics and move the cursor in one transaction, so nothing shows twice."""
        with self.db.tx() as tx:
            self._append(tx, job_id, events, metrics, cursor)

    def _append(self, tx: Tx, job_id: str, events: list[JobEvent], metrics: list[Metric], cursor: str | None) -> None:
        self._lock_jobs(tx, [job_id] if events else [])
        self._insert_news(tx, [(job_id, events, metrics)], redact)
        if cursor is not None:
            tx.execute("UPDATE jobs SET cursor = ? WHERE id = ?", (cursor, job_id))
        if events or metrics:
            tx.notify(job_id)

    @_retried
    def cursor(self, job_id: str) -> str | None:
        """Where reading the job's provider events stopped."""
        row = self.db.one("SELECT cursor FROM jobs WHERE id = ?", (job_id,))
        return row["cursor"] if row else None

    @_retried
    def events(self, job_id: str) -> list[JobEvent]:
        """A job's events, in the order they were recorded."""
        rows = self.db.read("SELECT * FROM events WHERE job_id = ? ORDER BY seq", (job_id,))
        return [
            JobEvent(created_at=r["created_at"], level=r["level"], message=r["message"], data=json.loads(r["data"]))
            for r in rows
        ]

    @_retried
    def metrics(self, job_id: str) -> list[Metric]:
        """A job's training metrics, by step."""
        rows = self.db.read("SELECT data FROM metrics WHERE job_id = ? ORDER BY step", (job_id,))
        return [Metric.model_validate_json(r["data"]) for r in rows]

    @_retried
    def latest_metrics(self, job_ids: list[str]) -> dict[str, Metric]:
        """Each job's latest metric, in one query per 500 jobs (progress columns of large experiments)."""
        found: dict[str, Metric] = {}
        for chunk, marks in _in_chunks(job_ids):
            rows = self.db.read(
                "SELECT m.job_id, m.data FROM metrics m JOIN (SELECT job_id, MAX(step) AS step FROM metrics"
                f" WHERE job_id IN ({marks}) GROUP BY job_id) last ON m.job_id = last.job_id AND m.step = last.step",
                chunk,
            )
            found.update((r["job_id"], Metric.model_validate_json(r["data"])) for r in rows)
        return found

    @_retried
    def metric_rows(self, job_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Raw metrics (plain dicts, by step) of many jobs: cheap enough for charts of 100,000 points."""
        found: dict[str, list[dict[str, Any]]] = {job_id: [] for job_id in job_ids}
        for chunk, marks in _in_chunks(job_ids):
            sql = f"SELECT job_id, data FROM metrics WHERE job_id IN ({marks}) ORDER BY job_id, step"
            rows = self.db.read(sql, chunk)
            for r in rows:
                found[r["job_id"]].append(orjson.loads(r["data"]))
        return found

    @_retried
    def first_metric(self, job_id: str) -> Metric | None:
        """A job's first recorded metric, if any."""
        row = self.db.one("SELECT data FROM metrics WHERE job_id = ? ORDER BY step LIMIT 1", (job_id,))
        return Metric.model_validate_json(row["data"]) if row else None

    @_retried
    def last_metric(self, job_id: str) -> Metric | None:
        """A job's latest recorded metric, if any."""
        row = self.db.one("SELECT data FROM metrics WHERE job_id = ? ORDER BY step DESC LIMIT 1", (job_id,))
        return Metric.model_validate_json(row["data"]) if row else None

    # eval results --------------------------------------------------------------------------------

    @_retried
    def save_scores(
        self, experiment_id: str, target: Target, scores: dict[str, tuple[float, float, float]], examples: int
    ) -> None:
        """A model's scores per scorer as (score, interval low, interval high)."""
        with self.db.tx() as tx:
            for scorer, (score, low, high) in scores.items():
                tx.execute(
                    "INSERT INTO eval_results (experiment_id, target, job_id, backend, model, scorer, score,"
                    " examples, created_at, low, high, role, base_model) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (experiment_id, target, scorer) DO UPDATE SET job_id = excluded.job_id,"
                    " backend = excluded.backend, model = excluded.model, score = excluded.score,"
                    " examples = excluded.examples, created_at = excluded.created_at, low = excluded.low,"
                    " high = excluded.high, role = excluded.role, base_model = excluded.base_model",
                    (experiment_id, target.label, target.job, target.section, target.model, scorer, score, examples,
                     now().isoformat(), low, high, target.role.value, target.base_model),
                )  # fmt: skip

    @_retried
    def cached_generations(self, keys: list[str]) -> dict[str, Completion]:
        """Stored generations for these cache keys (the ones found)."""
        found: dict[str, Completion] = {}
        for chunk, marks in _in_chunks(keys):
            rows = self.db.read(f"SELECT key, output, usage FROM generations WHERE key IN ({marks})", chunk)
            found.update((r["key"], Completion(text=r["output"], **json.loads(r["usage"] or "{}"))) for r in rows)
        return found

    @_retried
    def save_generations(self, items: list[tuple[str, Completion]]) -> None:
        """Each reply with its tokens and latency, so a cached re-run still reports what the calls cost."""
        stamp = now().isoformat()
        rows = [(k, c.text, stamp, c.model_dump_json(exclude={"text"})) for k, c in items]
        with self.db.tx() as tx:
            tx.executemany(
                "INSERT INTO generations (key, output, created_at, usage) VALUES (?, ?, ?, ?) ON CONFLICT (key) "
                "DO UPDATE SET output = excluded.output, created_at = excluded.created_at, usage = excluded.usage",
                rows,
            )

    @_retried
    def scores(self, experiment_id: str) -> list[dict[str, Any]]:
        """Every eval score of an experiment, with its interval, target and model."""
        rows = self.db.read(
            f"SELECT * FROM eval_results WHERE experiment_id = ? ORDER BY {self.db.ordering}", (experiment_id,)
        )
        return [{k: v for k, v in r.items() if k != "rid"} for r in rows]

    # where an experiment's files are ---------------------------------------------------------------

    @_retried
    def save_artifact(self, experiment_id: str, name: str, uri: str) -> None:
        """Record where one of an experiment's files is (a path, or an object store URL)."""
        with self.db.tx() as tx:
            tx.execute(
                "INSERT INTO artifacts (experiment_id, name, uri, created_at) VALUES (?, ?, ?, ?) ON CONFLICT "
                "(experiment_id, name) DO UPDATE SET uri = excluded.uri, created_at = excluded.created_at",
                (experiment_id, name, uri, now().isoformat()),
            )

    @_retried
    def artifacts(self, experiment_id: str) -> dict[str, str]:
        """Name → where, for an experiment's recorded files."""
        rows = self.db.read("SELECT name, uri FROM artifacts WHERE experiment_id = ? ORDER BY name", (experiment_id,))
        return {r["name"]: r["uri"] for r in rows}

    # an experiment's documents: held-out examples, data check, per-example results (experiment_files.py) --------

    @_retried
    def save_document(self, experiment_id: str, name: str, content: str) -> None:
        """Keep one of an experiment's documents (replacing one of the same name)."""
        with self.db.tx() as tx:
            tx.execute(
                "INSERT INTO experiment_documents (experiment_id, name, content, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (experiment_id, name) DO UPDATE SET content = excluded.content, "
                "created_at = excluded.created_at",
                (experiment_id, name, content, now().isoformat()),
            )

    @_retried
    def document(self, experiment_id: str, name: str) -> str | None:
        """One of an experiment's documents, None when it was never kept."""
        row = self.db.one(
            "SELECT content FROM experiment_documents WHERE experiment_id = ? AND name = ?", (experiment_id, name)
        )
        return str(row["content"]) if row else None

    # files opened for inspection in the dashboard (`fto ui --data FILE`) ------------------------------------

    @_retried
    def register_file(self, path: str) -> str:
        """The id the dashboard serves `path` under (the same id for the same path): the only way a file that no
        experiment references can be shown."""
        with self.db.tx() as tx:
            found = tx.read("SELECT id FROM inspected_files WHERE path = ?", (path,))
            if found:
                return str(found[0]["id"])
            file_id = new_id("file")
            tx.execute(
                "INSERT INTO inspected_files (id, path, created_at) VALUES (?, ?, ?)",
                (file_id, path, now().isoformat()),
            )
            return file_id

    @_retried
    def inspected_files(self) -> dict[str, str]:
        """Id → path of every file registered for inspection, newest first."""
        rows = self.db.read("SELECT id, path FROM inspected_files ORDER BY created_at DESC")
        return {r["id"]: r["path"] for r in rows}


def _alive(owner: str) -> bool:
    """Whether a claim's process may still run (one on another machine is assumed to, until its claim lapses)."""
    host, _, rest = owner.partition(":")
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(rest.partition(":")[0]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


def _experiment(row: Row) -> Experiment:
    return Experiment(
        id=row["id"],
        name=row["name"],
        spec=JobSpec.model_validate_json(row["spec"]),
        spec_path=row["spec_path"],
        created_at=row["created_at"],
    )


_NOT_IN_JOB = {"cursor", "submit_started_at", "lease_owner", "lease_until", "submit_owner", "submit_until", "rid"}


def _job(row: Row) -> Job:
    return Job.model_validate({k: v for k, v in row.items() if k not in _NOT_IN_JOB})
