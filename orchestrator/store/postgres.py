"""PostgreSQL, for a team: one store shared by many machines (psycopg 3 and its connection pool).

Credentials come only from the DSN's standard sources (PGPASSWORD, ~/.pgpass, the DSN itself); the DSN is
never shown with its password. A server that goes away is waited for: each Store call is retried with backoff
for up to FTO_STORE_RETRY_SECONDS (default 120), then fails with a clear message.
"""

from __future__ import annotations

import logging
import os
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from fto.orchestrator.errors import FtoError
from fto.orchestrator.store.database import Database, Row, Tx

T = TypeVar("T")
CHANNEL = "fto_jobs"
logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)  # fto says itself, once, when it cannot connect
MIGRATION_LOCK = 7_314_159  # pg_advisory_xact_lock key: one process migrates at a time


@cache
def _sql(text: str) -> str:
    """`?` placeholders as psycopg's `%s` (and a literal % doubled)."""
    return text.replace("%", "%%").replace("?", "%s")


def shown(dsn: str) -> str:
    """The DSN without its password, for messages."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "postgresql://…"
    user = f"{parts['user']}@" if parts.get("user") else ""
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{parts.get('host', '')}{port}/{parts.get('dbname', '')}"


class _PostgresTx(Tx):
    def __init__(self, conn: psycopg.Connection[Row]):
        self.conn = conn
        self.notified = False

    def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        return self.conn.execute(_sql(sql), args).rowcount

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            with self.conn.cursor() as cursor:
                cursor.executemany(_sql(sql), rows)  # pipelined: one round trip for all the rows

    def insert_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], key: Sequence[str] = ()
    ) -> None:
        """COPY: the server takes the rows as one stream, not one statement each (docs/benchmarks.md, poller at
        10,000 jobs). An upsert copies into a temporary table and merges it with one INSERT … SELECT."""
        if not rows:
            return
        names = ", ".join(columns)
        target = table
        if key:  # one row per key (the last), as one INSERT per row would leave it
            at = [columns.index(c) for c in key]
            rows = list({tuple(row[i] for i in at): row for row in rows}.values())
            target = f"fto_staged_{table}"
            self.conn.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {target} (LIKE {table}) ON COMMIT DELETE ROWS")
        with self.conn.cursor() as cursor, cursor.copy(f"COPY {target} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        if key:
            others = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
            self.conn.execute(
                f"INSERT INTO {table} ({names}) SELECT {names} FROM {target} "
                f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {others}"
            )

    def update_rows(
        self, table: str, key: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], assign: str
    ) -> None:
        """COPY into a temporary table shaped like `table`'s columns (so each value has its column's type), then
        one UPDATE … FROM: thousands of rows in three round trips."""
        names = ", ".join(columns)
        staged = f"fto_update_{table}_{zlib.crc32(names.encode()):08x}"  # a table per set of columns
        self.conn.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {staged} ON COMMIT DELETE ROWS AS SELECT {names} FROM {table} "
            "WITH NO DATA"
        )
        with self.conn.cursor() as cursor, cursor.copy(f"COPY {staged} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        self.conn.execute(f"UPDATE {table} SET {assign} FROM {staged} AS new WHERE {table}.{key} = new.{key}")

    def read(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return self.conn.execute(_sql(sql), args).fetchall()

    def notify(self, job_id: str) -> None:
        # Once per transaction, delivered at commit: listeners learn that jobs changed and read what they show.
        if not self.notified:
            self.notified = True
            self.conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, job_id))


class PostgresDatabase(Database):
    """A pool of connections to one PostgreSQL database, and a connection of its own that LISTENs."""

    dialect = "postgresql"
    ordering = "rid"  # a BIGSERIAL column: PostgreSQL has no rowid
    lock = " FOR UPDATE"

    def __init__(self, dsn: str):
        self.dsn = dsn
        self.where = shown(dsn)
        self.retry_seconds = float(os.environ.get("FTO_STORE_RETRY_SECONDS", "120"))
        self._pool: ConnectionPool[psycopg.Connection[Row]] = ConnectionPool(
            dsn,
            min_size=1,
            max_size=8,
            kwargs={"autocommit": True, "row_factory": dict_row},
            check=ConnectionPool.check_connection,  # a connection the server dropped is replaced, not used
            timeout=10,
            open=False,
        )
        self._listener: psycopg.Connection[Any] | None = None
        try:
            self._pool.open(wait=True, timeout=10)
        except PoolTimeout:
            self._pool.close()
            raise FtoError(
                f"cannot connect to the store at {self.where}: is the server up, and the DSN right?"
            ) from None

    def read(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        with self._pool.connection() as conn:
            return conn.execute(_sql(sql), args).fetchall()

    @contextmanager
    def tx(self) -> Iterator[Tx]:
        with self._pool.connection() as conn, conn.transaction():
            yield _PostgresTx(conn)

    def migration_lock(self, tx: Tx) -> None:
        tx.read("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))

    def columns(self, table: str) -> set[str]:
        rows = self.read(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = ? AND table_schema = current_schema()",
            (table,),
        )
        return {r["column_name"] for r in rows}

    def changed(self) -> bool:
        """Whether a NOTIFY arrived since the last call (LISTEN on a connection of its own)."""
        try:
            if self._listener is None or self._listener.closed:
                self._listener = psycopg.connect(self.dsn, autocommit=True)
                self._listener.execute(f"LISTEN {CHANNEL}")
                return True  # not listening until now: anything may have changed
            return any(True for _ in self._listener.notifies(timeout=0))
        except psycopg.OperationalError:
            self._listener = None
            return True

    def wait_for_change(self, timeout: float) -> bool:
        """Block until a job changes (a NOTIFY) or `timeout` seconds pass."""
        if self.changed():  # also starts listening
            return True
        try:
            assert self._listener is not None
            return any(True for _ in self._listener.notifies(timeout=timeout, stop_after=1))
        except psycopg.OperationalError:
            self._listener = None
            return True

    def run(self, call: Callable[[], T]) -> T:
        """`call()`, retried while the server is unreachable, for up to retry_seconds."""
        deadline = time.monotonic() + self.retry_seconds
        delay = 0.2
        while True:
            try:
                return call()
            except (psycopg.OperationalError, PoolTimeout) as exc:
                if time.monotonic() + delay > deadline:
                    raise FtoError(f"the store at {self.where} is unreachable: {exc}".strip()) from None
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        self._pool.close()
