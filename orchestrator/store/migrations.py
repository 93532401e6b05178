"""The store's schema as a numbered list of migrations, applied on start by both engines, in order, once each.

A store made by an older fto upgrades in place: its version is the highest number in `schema_migrations` (a store
from before versioning has none, and every step is written to be a no-op where it is already done). A new step goes
at the end; steps are never edited once released.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fto.orchestrator.store.database import Database, Tx

# Types both engines read the same way (SQLite by affinity): never REAL, which is 4 bytes in PostgreSQL.
TABLES = """
CREATE TABLE IF NOT EXISTS experiments (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, spec TEXT NOT NULL, spec_path TEXT, created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, experiment_id TEXT NOT NULL REFERENCES experiments(id), backend TEXT NOT NULL,
    provider_job_id TEXT, status TEXT NOT NULL, base_model TEXT, fine_tuned_model TEXT,
    trained_tokens BIGINT, error TEXT, cursor TEXT,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, finished_at TEXT{order}
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
    key TEXT PRIMARY KEY, output TEXT NOT NULL, created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS serve_jobs (
    id TEXT PRIMARY KEY, created_at BIGINT NOT NULL, request TEXT NOT NULL{order}
);
CREATE TABLE IF NOT EXISTS eval_results (
    experiment_id TEXT NOT NULL, target TEXT NOT NULL, job_id TEXT, backend TEXT NOT NULL, model TEXT NOT NULL,
    scorer TEXT NOT NULL, score DOUBLE PRECISION NOT NULL, examples INTEGER NOT NULL, created_at TEXT NOT NULL,
    PRIMARY KEY (experiment_id, target, scorer){order}
);
"""


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _tables(db: Database, tx: Tx) -> None:
    order = ", rid BIGSERIAL" if db.ordering == "rid" else ""  # SQLite keeps insertion order in its rowid
    for statement in _statements(TABLES.format(order=order)):
        tx.execute(statement)


def _add_columns(*columns: tuple[str, str, str]) -> Callable[[Database, Tx], None]:
    def add(db: Database, tx: Tx) -> None:
        for table, column, kind in columns:
            if column not in db.columns(table):
                tx.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    return add


def _one_job_per_section(db: Database, tx: Tx) -> None:
    tx.execute("CREATE UNIQUE INDEX IF NOT EXISTS jobs_one_per_section ON jobs(experiment_id, backend)")
    tx.execute("CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs(status)")


def _artifacts(db: Database, tx: Tx) -> None:
    tx.execute(
        "CREATE TABLE IF NOT EXISTS artifacts (experiment_id TEXT NOT NULL, name TEXT NOT NULL, uri TEXT NOT NULL, "
        "created_at TEXT NOT NULL, PRIMARY KEY (experiment_id, name))"
    )


def _jobs_by_time(db: Database, tx: Tx) -> None:
    tx.execute("CREATE INDEX IF NOT EXISTS jobs_by_time ON jobs(created_at)")


def _inspected_files(db: Database, tx: Tx) -> None:
    tx.execute(
        "CREATE TABLE IF NOT EXISTS inspected_files (id TEXT PRIMARY KEY, path TEXT NOT NULL UNIQUE, "
        "created_at TEXT NOT NULL)"
    )


def _experiment_documents(db: Database, tx: Tx) -> None:
    tx.execute(
        "CREATE TABLE IF NOT EXISTS experiment_documents (experiment_id TEXT NOT NULL, name TEXT NOT NULL, "
        "content TEXT NOT NULL, created_at TEXT NOT NULL, PRIMARY KEY (experiment_id, name))"
    )


def _target_roles(db: Database, tx: Tx) -> None:
    """What each evaluated model is, as a column: reports no longer read it out of the label. Rows written before
    it existed are given theirs from the labels that fto wrote then, once, here."""
    _add_columns(("eval_results", "role", "TEXT"), ("eval_results", "base_model", "TEXT"))(db, tx)
    tx.execute(
        "UPDATE eval_results SET role = CASE WHEN target LIKE '%/fine-tuned' THEN 'fine_tuned' "
        "WHEN target LIKE '%/base' THEN 'base' WHEN job_id IS NOT NULL THEN 'checkpoint' ELSE 'external' END "
        "WHERE role IS NULL"
    )


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Database, Tx], None]


MIGRATIONS = [
    Migration(1, "experiments, jobs, events, metrics, uploads, notifications, generations, eval results", _tables),
    Migration(2, "crash-safe submission and poll leases", _add_columns(
        ("jobs", "submit_started_at", "TEXT"), ("jobs", "lease_owner", "TEXT"),
        ("jobs", "lease_until", "DOUBLE PRECISION"))),
    Migration(3, "score intervals", _add_columns(
        ("eval_results", "low", "DOUBLE PRECISION"), ("eval_results", "high", "DOUBLE PRECISION"))),
    Migration(4, "token counts and latency of cached generations", _add_columns(("generations", "usage", "TEXT"))),
    Migration(5, "one job per backend section of an experiment; submission claims", _one_job_per_section),
    Migration(6, "who is submitting a job, until when", _add_columns(
        ("jobs", "submit_owner", "TEXT"), ("jobs", "submit_until", "DOUBLE PRECISION"))),
    Migration(7, "where each experiment's files are (a folder or an object store)", _artifacts),
    Migration(8, "the latest jobs found by time (`fto status` in a store of many)", _jobs_by_time),
    Migration(9, "files registered for the dashboard's data pages (no request names a path)", _inspected_files),
    Migration(10, "an experiment's held-out examples, data check and per-example results, for every machine",
              _experiment_documents),
    Migration(11, "what each evaluated model is (base, fine-tuned, checkpoint, external) and its base",
              _target_roles),
]  # fmt: skip
LATEST = MIGRATIONS[-1].version


def version(db: Database) -> int:
    """The store's schema version (0: a store from before versioning, or a new one)."""
    if "version" not in db.columns("schema_migrations"):
        return 0
    row = db.one("SELECT MAX(version) AS v FROM schema_migrations")
    return int(row["v"] or 0) if row else 0


def migrate(db: Database) -> list[int]:
    """Apply the migrations this store lacks, each in its own transaction; returns the versions applied."""
    applied: list[int] = []
    if version(db) >= LATEST:
        return applied
    with db.tx() as tx:
        tx.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
    for step in MIGRATIONS:
        with db.tx() as tx:
            db.migration_lock(tx)  # another process may be migrating the same store right now
            done = tx.read("SELECT version FROM schema_migrations WHERE version = ?", (step.version,))
            if done:
                continue
            step.apply(db, tx)
            tx.execute(
                "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)",
                (step.version, step.description, _now()),
            )
            applied.append(step.version)
    return applied


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat()
