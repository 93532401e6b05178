"""`fto store …`: where the job store is, and moving it to PostgreSQL."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

console = Console(soft_wrap=True)


@click.group()
def store() -> None:
    """The job store: SQLite under FTO_HOME (default) or PostgreSQL (FTO_STORE / --store)."""


@store.command()
def info() -> None:
    """Which store this fto uses, its engine and schema version (never its password)."""
    from fto.orchestrator.store import Store
    from fto.orchestrator.store.migrations import LATEST, version

    opened = Store()
    console.print(f"store: {opened.db.where} ({opened.db.dialect}), schema version {version(opened.db)} of {LATEST}")


@store.command(name="migrate")
@click.option("--to", "target", required=True, metavar="DSN", help="the store to copy into, e.g. postgresql://…")
def migrate_(target: str) -> None:
    """Copy this store (experiments, jobs, events, metrics, scores, …) into another, checked by counts.

    The password comes from PGPASSWORD or ~/.pgpass rather than the command line, where others can read it."""
    from fto.orchestrator.store import Store
    from fto.orchestrator.store.copy import copy_store

    source = Store()
    destination = Store(target)
    counts = copy_store(source, destination)
    table = Table(title=f"{source.db.where} → {destination.db.where}")
    for name in ("table", "rows here", "rows there"):
        table.add_column(name, justify="left" if name == "table" else "right")
    for name, (here, there) in counts.items():
        table.add_row(name, f"{here:,}", f"{there:,}")
    console.print(table)
    console.print(f"every row arrived. Use it: export FTO_STORE={destination.db.where} (password from PGPASSWORD)")
