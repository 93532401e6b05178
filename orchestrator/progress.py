"""Live views in the terminal: a table of jobs while they train, a bar per model while it is evaluated."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from fto.orchestrator.store import Store
from fto.schemas import Job

MAX_ROWS = 25  # beyond this, the unfinished jobs are listed first and the rest counted


def eta(store: Store, job: Job) -> str:
    """Time left, from the pace of the steps seen so far."""
    first, last = store.first_metric(job.id), store.last_metric(job.id)
    if not (first and last and last.total_steps and first.created_at and last.created_at) or last.step <= first.step:
        return ""
    per_step = (last.created_at - first.created_at).total_seconds() / (last.step - first.step)
    seconds = per_step * (last.total_steps - last.step)
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s" if seconds >= 60 else f"{seconds:.0f}s"


class JobsView:
    """A live table of jobs: status, progress, loss and time left; called by the poller on each tick."""

    def __init__(self, store: Store, console: Console):
        self.store = store
        self.live = Live(console=console, refresh_per_second=4, transient=False)

    def __enter__(self) -> JobsView:
        self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.stop()
        self.live.console.line()

    def __call__(self, jobs: list[Job]) -> None:
        self.live.update(self.render(jobs))

    def render(self, jobs: list[Job]) -> Group:
        """The live table of jobs: status, progress, loss and ETA."""
        table = Table(expand=False)
        for column in ("job", "backend", "status", "progress", "loss", "ETA"):
            table.add_column(column, justify="right" if column in ("progress", "loss", "ETA") else "left")
        shown = sorted(jobs, key=lambda j: (j.status.terminal, j.created_at))[:MAX_ROWS]
        for job in shown:
            metric = self.store.last_metric(job.id)
            progress = f"{metric.step}/{metric.total_steps}" if metric and metric.total_steps else ""
            loss = f"{metric.loss:.4f}" if metric and metric.loss is not None else ""
            style = {"succeeded": "green", "failed": "red", "cancelled": "yellow"}.get(job.status.value, "")
            table.add_row(
                job.id,
                job.backend,
                Text(job.status.value, style=style),
                progress,
                loss,
                "" if job.status.terminal else eta(self.store, job),
            )
        counts = Counter(j.status.value for j in jobs)
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        more = f" (showing {len(shown)} of {len(jobs)})" if len(jobs) > len(shown) else ""
        clock = datetime.now(UTC).strftime("%H:%M:%S")
        return Group(table, Text(f"{clock}  {summary}{more}"))


class EvalProgress:
    """A progress bar per evaluated model while eval runs."""

    def __init__(self, console: Console):
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
        )
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> EvalProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, target: str, done: int, total: int) -> None:
        if target not in self.tasks:
            self.tasks[target] = self.progress.add_task(f"eval {target}", total=total)
        self.progress.update(self.tasks[target], completed=done)
