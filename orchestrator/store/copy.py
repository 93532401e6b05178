"""`fto store migrate --to DSN`: every row of one store copied into another, checked by counts."""

from __future__ import annotations

from fto.orchestrator.errors import FtoError
from fto.orchestrator.store import Store

# Parents before children; each with the columns that identify a row (the copy can be run again).
TABLES = {
    "experiments": ("id",),
    "jobs": ("id",),
    "events": ("job_id", "seq"),
    "metrics": ("job_id", "step"),
    "uploads": ("backend", "digest"),
    "notifications": ("experiment_id",),
    "generations": ("key",),
    "serve_jobs": ("id",),
    "eval_results": ("experiment_id", "target", "scorer"),
    "artifacts": ("experiment_id", "name"),
}
BATCH = 1000
_NOT_COPIED = {"rid", "lease_owner", "lease_until", "submit_owner", "submit_until"}  # order and who polls: per store


def copy_store(source: Store, target: Store) -> dict[str, tuple[int, int]]:
    """Copy every table, in insertion order; returns table → (rows in source, rows in target)."""
    counts: dict[str, tuple[int, int]] = {}
    for table, key in TABLES.items():
        rows = source.db.read(f"SELECT * FROM {table} ORDER BY {source.db.ordering}")
        columns = [c for c in (rows[0] if rows else {}) if c not in _NOT_COPIED]
        if rows:
            sql = (
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
                f"ON CONFLICT ({', '.join(key)}) DO NOTHING"
            )
            for start in range(0, len(rows), BATCH):
                with target.db.tx() as tx:
                    tx.executemany(sql, [[row[c] for c in columns] for row in rows[start : start + BATCH]])
        have = target.db.one(f"SELECT COUNT(*) AS n FROM {table}")
        counts[table] = (len(rows), int(have["n"]) if have else 0)
    wrong = {t: c for t, c in counts.items() if c[0] != c[1]}
    if wrong:
        detail = ", ".join(f"{t}: {s} here, {d} there" for t, (s, d) in wrong.items())
        raise FtoError(f"the copy does not match ({detail}): was {target.db.where} empty before?")
    return counts
