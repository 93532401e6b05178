"""The two engines behind the Store: one small interface, so the Store's SQL is written once.

SQL is written with `?` placeholders and portable statements (ON CONFLICT, subqueries); an engine adapts the
little that differs: placeholders, row locks, the column that keeps insertion order, change notifications.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, TypeVar

T = TypeVar("T")

Row = dict[str, Any]


class Tx(ABC):
    """One transaction: everything in it commits together or not at all."""

    @abstractmethod
    def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run one statement; returns the number of rows it changed."""

    @abstractmethod
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each row of arguments."""

    def insert_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], key: Sequence[str] = ()
    ) -> None:
        """Many rows into `table`; with `key` (its primary key's columns), a row whose key exists replaces the
        other columns. Here one INSERT per row; an engine with a bulk path (COPY) overrides it."""
        marks = ", ".join("?" * len(columns))
        upsert = ""
        if key:
            others = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
            upsert = f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET {others}"
        self.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}){upsert}", rows)

    def update_rows(
        self, table: str, key: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], assign: str
    ) -> None:
        """Update the row of `table` whose `key` matches each of `rows` (one per key; `columns` include `key`):
        `assign` is the SET clause, over the row's old values (`table.column`) and the new (`new.column`). Here
        one UPDATE per row; an engine with a bulk path (COPY) overrides it."""
        values = ", ".join(f"? AS {c}" for c in columns)
        self.executemany(
            f"UPDATE {table} SET {assign} FROM (SELECT {values}) AS new WHERE {table}.{key} = new.{key}", rows
        )

    @abstractmethod
    def read(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        """Rows of a query, inside this transaction."""

    def notify(self, job_id: str) -> None:  # noqa: B027  (an engine without notifications does nothing)
        """Tell listeners (`fto wait`, the dashboard) that a job changed, when the transaction commits."""


class Database(ABC):
    """A connection (or pool) to one store."""

    dialect: str
    where: str  # for messages: a path, or a DSN without its password
    ordering: str  # the column that keeps insertion order
    lock: str  # appended to a SELECT to lock its rows for this transaction ("" where a transaction locks all)

    @abstractmethod
    def read(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        """Rows of a query, outside any transaction."""

    def one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        """The first row of a query, or None."""
        rows = self.read(sql, args)
        return rows[0] if rows else None

    @abstractmethod
    def tx(self) -> AbstractContextManager[Tx]:
        """A write transaction (serialised with other writers as the engine does it)."""

    @abstractmethod
    def columns(self, table: str) -> set[str]:
        """The columns a table has (for migrations that add one)."""

    @abstractmethod
    def changed(self) -> bool:
        """Whether another process changed the store since the last call (cheap: no table is read)."""

    def wait_for_change(self, timeout: float) -> bool:
        """Block until another process changes the store, or `timeout` seconds pass."""
        deadline = time.monotonic() + timeout
        while not self.changed():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True

    def migration_lock(self, tx: Tx) -> None:  # noqa: B027  (SQLite's write transaction is lock enough)
        """Make `tx` the only one applying migrations (where a write transaction alone does not)."""

    def run(self, call: Callable[[], T]) -> T:
        """One Store call; engines whose server can go away retry it while it is unreachable."""
        return call()

    @abstractmethod
    def close(self) -> None:
        """Close the connections."""
