"""SQLite in WAL mode under FTO_HOME: the embedded default, safe for several fto processes on one machine."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fto.orchestrator.store.database import Database, Row, Tx


class _SQLiteTx(Tx):
    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        return self.db.execute(sql, args).rowcount

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.db.executemany(sql, rows)

    def read(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return [dict(r) for r in self.db.execute(sql, args)]


class SQLiteDatabase(Database):
    """One connection to the store's file (WAL: readers never wait for the writer)."""

    dialect = "sqlite"
    ordering = "rowid"
    lock = ""  # BEGIN IMMEDIATE takes the write lock for the whole transaction

    def __init__(self, path: Path):
        self.path = path
        self.where = str(path)
        # autocommit mode: each `with tx()` is one explicit transaction
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._version = self._data_version()

    def read(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return [dict(r) for r in self._db.execute(sql, args)]

    @contextmanager
    def tx(self) -> Iterator[Tx]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield _SQLiteTx(self._db)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def columns(self, table: str) -> set[str]:
        return {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}

    def _data_version(self) -> int:
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def changed(self) -> bool:
        """SQLite's data_version moves when another connection commits."""
        version = self._data_version()
        moved, self._version = version != self._version, version
        return moved

    def close(self) -> None:
        self._db.close()
