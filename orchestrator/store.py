"""The durable job store: SQLite in WAL mode under $FTO_HOME, safe for several fto processes at once."""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fto.orchestrator.errors import NotFoundError
from fto.orchestrator.paths import fto_home
from fto.orchestrator.secrets import redact
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

SCHEMA = """
CREATE TABLE IF NOT EXISTS experiments (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, spec TEXT NOT NULL, spec_path TEXT, created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, experiment_id TEXT NOT NULL REFERENCES experiments(id), backend TEXT NOT NULL,
    provider_job_id TEXT, status TEXT NOT NULL, base_model TEXT, fine_tuned_model TEXT,
    trained_tokens INTEGER, error TEXT, cursor TEXT,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, finished_at TEXT,
    submit_started_at TEXT, lease_owner TEXT, lease_until REAL
);
CREATE INDEX IF NOT EXISTS jobs_by_experiment ON jobs(experiment_id);
CREATE INDEX IF NOT EXISTS experiments_by_name ON experiments(name, created_at);
CREATE INDEX IF NOT EXISTS experiments_by_time ON experiments(created_at);
CREATE TABLE IF NOT EXISTS events (
    job_id TEXT NOT NULL, seq INTEGER NOT NULL, created_at TEXT NOT NULL, level TEXT NOT NULL,
    message TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (job_id, seq)
);
CREATE TABLE IF NOT EXISTS metrics (
    job_id TEXT NOT NULL, step INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (job_id, step)
);
CREATE TABLE IF NOT EXISTS uploads (
    backend TEXT NOT NULL, digest TEXT NOT NULL, uploaded TEXT NOT NULL, created_at TEXT NOT NULL,
    PRIMARY KEY (backend, digest)
);
CREATE TABLE IF NOT EXISTS notifications (
    experiment_id TEXT PRIMARY KEY, sent_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS generations (
    key TEXT PRIMARY KEY, output TEXT NOT NULL, created_at TEXT NOT NULL, usage TEXT
);
CREATE TABLE IF NOT EXISTS serve_jobs (
    id TEXT PRIMARY KEY, created_at INTEGER NOT NULL, request TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS eval_results (
    experiment_id TEXT NOT NULL, target TEXT NOT NULL, job_id TEXT, backend TEXT NOT NULL, model TEXT NOT NULL,
    scorer TEXT NOT NULL, score REAL NOT NULL, examples INTEGER NOT NULL, created_at TEXT NOT NULL,
    low REAL, high REAL,
    PRIMARY KEY (experiment_id, target, scorer)
);
"""


def _checkpoint_event(checkpoint: Checkpoint) -> JobEvent:
    """Checkpoints are kept as events: `fto logs` shows them, and their data names the model to query."""
    return JobEvent(
        created_at=checkpoint.created_at or now(),
        message=f"checkpoint at step {checkpoint.step}: {checkpoint.model}",
        data={"checkpoint": checkpoint.model, "step": checkpoint.step, "metrics": checkpoint.metrics},
    )


def now() -> datetime:
    """The current time, in UTC."""
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    """A short random id with a readable prefix (exp-…, job-…)."""
    return f"{prefix}-{secrets.token_hex(5)}"


_TERMINAL = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class Store:
    """Experiments, jobs, their events and metrics, and eval results."""

    def __init__(self, path: Path | None = None):
        self.path = path or fto_home() / "fto.db"
        # autocommit mode: each `with self._tx()` is one explicit transaction
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.executescript(SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Columns added since a store was created (stores are never rebuilt: they hold users' jobs)."""
        have = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        for column, kind in (("submit_started_at", "TEXT"), ("lease_owner", "TEXT"), ("lease_until", "REAL")):
            if column not in have:
                self._db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {kind}")
        scored = {row[1] for row in self._db.execute("PRAGMA table_info(eval_results)")}
        for column in ("low", "high"):
            if column not in scored:
                self._db.execute(f"ALTER TABLE eval_results ADD COLUMN {column} REAL")
        if "usage" not in {row[1] for row in self._db.execute("PRAGMA table_info(generations)")}:
            self._db.execute("ALTER TABLE generations ADD COLUMN usage TEXT")

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # jobs created through `fto serve`'s API ------------------------------------------------------------

    def save_serve_job(self, job_id: str, created_at: int, request: dict[str, Any]) -> None:
        """Keep (or update) what a client asked of a `fto serve` job."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO serve_jobs (id, created_at, request) VALUES (?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET request = excluded.request",
                (job_id, created_at, json.dumps(request)),
            )

    def serve_job(self, job_id: str) -> dict[str, Any] | None:
        """What a client asked of a `fto serve` job, or None."""
        row = self._db.execute("SELECT request FROM serve_jobs WHERE id = ?", (job_id,)).fetchone()
        return json.loads(row["request"]) if row else None

    def serve_jobs(self) -> list[dict[str, Any]]:
        """Every `fto serve` job's request, newest first."""
        rows = self._db.execute("SELECT request FROM serve_jobs ORDER BY created_at DESC, rowid DESC")
        return [json.loads(row["request"]) for row in rows]

    # experiments ---------------------------------------------------------------------------------

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
        with self._tx() as db:
            db.execute(
                "INSERT INTO experiments VALUES (?, ?, ?, ?, ?)",
                (experiment.id, spec.name, spec.model_dump_json(), spec_path, created.isoformat()),
            )
            for job in jobs:
                db.execute(
                    "INSERT INTO jobs (id, experiment_id, backend, status, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        job.id,
                        job.experiment_id,
                        job.backend,
                        job.status.value,
                        created.isoformat(),
                        created.isoformat(),
                    ),
                )
        return experiment, jobs

    def experiment(self, key: str) -> Experiment:
        """By id, by name (the latest experiment of that name), or by a unique prefix of its id (as git does)."""
        row = (
            self._db.execute("SELECT * FROM experiments WHERE id = ?", (key,)).fetchone()
            or self._db.execute(
                "SELECT * FROM experiments WHERE name = ? ORDER BY created_at DESC LIMIT 1", (key,)
            ).fetchone()
            or self._by_prefix("experiments", "exp-", key)
        )
        if row is None:
            raise NotFoundError(f"no experiment {key!r} in {self.path}")
        return _experiment(row)

    def _by_prefix(self, table: str, kind: str, key: str) -> sqlite3.Row | None:
        """The one row whose id starts with `key` (with or without its `kind` prefix); ambiguity is an error."""
        pattern = key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self._db.execute(
            f"SELECT * FROM {table} WHERE id LIKE ? ESCAPE '\\' OR id LIKE ? ESCAPE '\\' LIMIT 6",
            (pattern, kind + pattern),
        ).fetchall()
        if len(rows) > 1:
            shown = ", ".join(row["id"] for row in rows[:5])
            raise NotFoundError(f"{key!r} is the start of several ids ({shown}…): give more of it")
        return rows[0] if rows else None

    def latest_experiment(self) -> Experiment:
        """The experiment started last."""
        row = self._db.execute("SELECT * FROM experiments ORDER BY created_at DESC LIMIT 1").fetchone()
        if row is None:
            raise NotFoundError(f"no experiments yet in {self.path}; start one with `fto run JOB.yaml`")
        return _experiment(row)

    # jobs ----------------------------------------------------------------------------------------

    def job(self, job_id: str) -> Job:
        """One job by id, or by a unique prefix of its id."""
        row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone() or self._by_prefix(
            "jobs", "job-", job_id
        )
        if row is None:
            raise NotFoundError(f"no job {job_id!r} in {self.path}")
        return _job(row)

    def jobs_by_id(self, job_ids: list[str]) -> list[Job]:
        """The jobs with these ids, in the order asked."""
        found: dict[str, Job] = {}
        for k in range(0, len(job_ids), 500):  # SQLite caps the parameters of one statement
            chunk = job_ids[k : k + 500]
            rows = self._db.execute(f"SELECT * FROM jobs WHERE id IN ({','.join('?' * len(chunk))})", chunk)
            found.update((r["id"], _job(r)) for r in rows)
        return [found[i] for i in job_ids]

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
        return [_job(r) for r in self._db.execute(sql + " ORDER BY created_at, rowid", args)]

    def resolve_jobs(self, key: str | None) -> list[Job]:
        """A job id, an experiment id or name, or (None) every job that has not finished."""
        if key is None:
            return self.jobs(active_only=True)
        if key.startswith("job-"):
            return [self.job(key)]
        if not key.startswith("exp-") and self._by_prefix("jobs", "job-", key) is not None:
            return [self.job(key)]
        return self.jobs(self.experiment(key).id)

    def mark_submitting(self, job_id: str) -> None:
        """Record that a create request is about to be sent: after a crash, the provider must be asked first."""
        with self._tx() as db:
            db.execute("UPDATE jobs SET submit_started_at = ? WHERE id = ?", (now().isoformat(), job_id))

    def submit_started(self, job_id: str) -> bool:
        """Whether a create request for the job may have been sent (so a retry must look first)."""
        row = self._db.execute("SELECT submit_started_at FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return bool(row and row[0])

    def unsubmitted(self, experiment_id: str | None = None) -> list[Job]:
        """Jobs recorded but never acknowledged by their provider (a crash mid-submit, or never reached)."""
        sql = "SELECT * FROM jobs WHERE provider_job_id IS NULL AND status = ?"
        args: list[Any] = [JobStatus.PENDING.value]
        if experiment_id:
            sql += " AND experiment_id = ?"
            args.append(experiment_id)
        return [_job(r) for r in self._db.execute(sql, args)]

    def acquire_lease(self, job_id: str, owner: str, seconds: float) -> bool:
        """Take (or renew) the right to poll a job, so two fto processes never poll the same one."""
        clock = time.time()
        with self._tx() as db:
            cursor = db.execute(
                "UPDATE jobs SET lease_owner = ?, lease_until = ? WHERE id = ? AND "
                "(lease_owner IS NULL OR lease_owner = ? OR lease_until < ?)",
                (owner, clock + seconds, job_id, owner, clock),
            )
        return cursor.rowcount == 1

    def release_leases(self, owner: str) -> None:
        """Give up every poll lease `owner` holds, so other pollers take the jobs at once."""
        with self._tx() as db:
            db.execute("UPDATE jobs SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?", (owner,))

    def uploaded(self, backend: str, digest: str) -> str | None:
        """What `backend` called a file with this content digest when it was uploaded, if it was."""
        row = self._db.execute(
            "SELECT uploaded FROM uploads WHERE backend = ? AND digest = ?", (backend, digest)
        ).fetchone()
        return row[0] if row else None

    def save_upload(self, backend: str, digest: str, uploaded: str) -> None:
        """Remember the provider's name for an uploaded file, by content digest."""
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO uploads VALUES (?, ?, ?, ?)", (backend, digest, uploaded, now().isoformat())
            )

    def claim_notification(self, experiment_id: str) -> bool:
        """True once per experiment: whoever claims it sends the 'finished' notification."""
        with self._tx() as db:
            cursor = db.execute("INSERT OR IGNORE INTO notifications VALUES (?, ?)", (experiment_id, now().isoformat()))
        return cursor.rowcount == 1

    def experiments(self, limit: int = 20) -> list[Experiment]:
        """The most recent experiments, newest first."""
        rows = self._db.execute("SELECT * FROM experiments ORDER BY created_at DESC LIMIT ?", (limit,))
        return [_experiment(r) for r in rows]

    def set_submitted(self, job_id: str, provider_job_id: str) -> None:
        """Record the provider's id of a submitted job."""
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET provider_job_id = ?, status = ?, updated_at = ? WHERE id = ?",
                (provider_job_id, JobStatus.QUEUED.value, now().isoformat(), job_id),
            )

    def request_cancel(self, job_id: str) -> None:
        """Record at once that a cancel was asked (status cancelling, an event), before the provider confirms."""
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET status = ?, updated_at = ? WHERE id = ? AND status NOT IN (?, ?, ?)",
                (JobStatus.CANCELLING.value, now().isoformat(), job_id, *(s.value for s in _TERMINAL)),
            )
            self._append(
                db, job_id, [JobEvent(created_at=now(), level="warning", message="cancel requested")], [], None
            )

    def update_from_provider(self, job_id: str, state: ProviderJob) -> Job:
        """Record the provider's view; the first terminal status stamps finished_at."""
        with self._tx() as db:
            self._update_state(db, job_id, state)
        return self.job(job_id)

    def record_polls(self, polls: list[tuple[str, ProviderJob, ProviderUpdates]]) -> None:
        """Polls' news (events, metrics, cursor) and the jobs' states, in one transaction."""
        with self._tx() as db:
            for job_id, state, updates in polls:
                events = updates.events + [_checkpoint_event(c) for c in updates.checkpoints]
                self._append(db, job_id, events, updates.metrics, updates.cursor)
                self._update_state(db, job_id, state)

    def _update_state(self, db: sqlite3.Connection, job_id: str, state: ProviderJob) -> None:
        stamp = now().isoformat()
        # A cancel asked for stays visible until the provider says the job ended.
        db.execute(
            """UPDATE jobs SET status = CASE WHEN status = 'cancelling' AND NOT ? THEN status ELSE ? END,
               base_model = COALESCE(?, base_model),
               fine_tuned_model = COALESCE(?, fine_tuned_model), trained_tokens = COALESCE(?, trained_tokens),
               error = ?, updated_at = ?,
               finished_at = CASE WHEN ? AND finished_at IS NULL THEN ? ELSE finished_at END
               WHERE id = ?""",
            (
                state.status.terminal,
                state.status.value,
                state.base_model,
                state.fine_tuned_model,
                state.trained_tokens,
                redact(state.error) if state.error else None,
                stamp,
                state.status.terminal,
                stamp,
                job_id,
            ),
        )

    def reopen(self, job_id: str) -> None:
        """A resumed job is unfinished again."""
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET status = ?, error = NULL, finished_at = NULL, updated_at = ? WHERE id = ?",
                (JobStatus.QUEUED.value, now().isoformat(), job_id),
            )

    def fail(self, job_id: str, error: str) -> None:
        """Mark a job failed with its cause, which its events tell too (`fto logs`)."""
        self.add_updates(job_id, [JobEvent(created_at=now(), level="error", message=redact(error))], [], None)
        self.update_from_provider(job_id, ProviderJob(status=JobStatus.FAILED, error=error))

    # events and metrics --------------------------------------------------------------------------

    def add_updates(self, job_id: str, events: list[JobEvent], metrics: list[Metric], cursor: str | None) -> None:
        """Append events and metrics and move the cursor in one transaction, so nothing shows twice."""
        with self._tx() as db:
            self._append(db, job_id, events, metrics, cursor)

    def _append(
        self, db: sqlite3.Connection, job_id: str, events: list[JobEvent], metrics: list[Metric], cursor: str | None
    ) -> None:
        if events:
            db.executemany(
                "INSERT INTO events VALUES "
                "(?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE job_id = ?), ?, ?, ?, ?)",
                [
                    (job_id, job_id, e.created_at.isoformat(), e.level, redact(e.message), redact(json.dumps(e.data)))
                    for e in events
                ],
            )
        if metrics:
            seen = now()  # when we learnt of a metric: enough to estimate the time left
            db.executemany(
                "INSERT OR REPLACE INTO metrics VALUES (?, ?, ?)",
                [
                    (
                        job_id,
                        m.step,
                        (m if m.created_at else m.model_copy(update={"created_at": seen})).model_dump_json(
                            exclude_none=True
                        ),
                    )
                    for m in metrics
                ],
            )
        if cursor is not None:
            db.execute("UPDATE jobs SET cursor = ? WHERE id = ?", (cursor, job_id))

    def cursor(self, job_id: str) -> str | None:
        """Where reading the job's provider events stopped."""
        row = self._db.execute("SELECT cursor FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return row["cursor"] if row else None

    def events(self, job_id: str) -> list[JobEvent]:
        """A job's events, in the order they were recorded."""
        rows = self._db.execute("SELECT * FROM events WHERE job_id = ? ORDER BY seq", (job_id,))
        return [
            JobEvent(created_at=r["created_at"], level=r["level"], message=r["message"], data=json.loads(r["data"]))
            for r in rows
        ]

    def metrics(self, job_id: str) -> list[Metric]:
        """A job's training metrics, by step."""
        rows = self._db.execute("SELECT data FROM metrics WHERE job_id = ? ORDER BY step", (job_id,))
        return [Metric.model_validate_json(r["data"]) for r in rows]

    def first_metric(self, job_id: str) -> Metric | None:
        """A job's first recorded metric, if any."""
        row = self._db.execute("SELECT data FROM metrics WHERE job_id = ? ORDER BY step LIMIT 1", (job_id,)).fetchone()
        return Metric.model_validate_json(row["data"]) if row else None

    def last_metric(self, job_id: str) -> Metric | None:
        """A job's latest recorded metric, if any."""
        row = self._db.execute(
            "SELECT data FROM metrics WHERE job_id = ? ORDER BY step DESC LIMIT 1", (job_id,)
        ).fetchone()
        return Metric.model_validate_json(row["data"]) if row else None

    # eval results --------------------------------------------------------------------------------

    def save_scores(
        self,
        experiment_id: str,
        target: str,
        job_id: str | None,
        backend: str,
        model: str,
        scores: dict[str, tuple[float, float, float]],
        examples: int,
    ) -> None:
        """Scores per scorer as (score, interval low, interval high)."""
        with self._tx() as db:
            for scorer, (score, low, high) in scores.items():
                db.execute(
                    "INSERT OR REPLACE INTO eval_results (experiment_id, target, job_id, backend, model, scorer, score,"
                    " examples, created_at, low, high) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        experiment_id,
                        target,
                        job_id,
                        backend,
                        model,
                        scorer,
                        score,
                        examples,
                        now().isoformat(),
                        low,
                        high,
                    ),
                )

    def cached_generations(self, keys: list[str]) -> dict[str, Completion]:
        """Stored generations for these cache keys (the ones found)."""
        found: dict[str, Completion] = {}
        for k in range(0, len(keys), 500):
            chunk = keys[k : k + 500]
            rows = self._db.execute(
                f"SELECT key, output, usage FROM generations WHERE key IN ({','.join('?' * len(chunk))})", chunk
            )
            found.update((r[0], Completion(text=r[1], **json.loads(r[2] or "{}"))) for r in rows)
        return found

    def save_generations(self, items: list[tuple[str, Completion]]) -> None:
        """Each reply with its tokens and latency, so a cached re-run still reports what the calls cost."""
        stamp = now().isoformat()
        rows = [(k, c.text, stamp, c.model_dump_json(exclude={"text"})) for k, c in items]
        with self._tx() as db:
            db.executemany("INSERT OR REPLACE INTO generations VALUES (?, ?, ?, ?)", rows)

    def scores(self, experiment_id: str) -> list[dict[str, Any]]:
        """Every eval score of an experiment, with its interval, target and model."""
        rows = self._db.execute("SELECT * FROM eval_results WHERE experiment_id = ? ORDER BY rowid", (experiment_id,))
        return [dict(r) for r in rows]


def _experiment(row: sqlite3.Row) -> Experiment:
    return Experiment(
        id=row["id"],
        name=row["name"],
        spec=JobSpec.model_validate_json(row["spec"]),
        spec_path=row["spec_path"],
        created_at=row["created_at"],
    )


_NOT_IN_JOB = {"cursor", "submit_started_at", "lease_owner", "lease_until"}


def _job(row: sqlite3.Row) -> Job:
    return Job.model_validate({k: row[k] for k in row.keys() if k not in _NOT_IN_JOB})  # noqa: SIM118
