"""Live progress in the terminal: training steps per job, generation per eval target."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from orchestrator.store import Store
from schemas import Job


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
    )


class TrainingProgress:
    """One bar per job, moved by the metrics the poller has stored."""

    def __init__(self, store: Store, console: Console):
        self.store = store
        self.progress = _progress(console)
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> TrainingProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, jobs: list[Job]) -> None:
        for job in jobs:
            if job.id not in self.tasks:
                self.tasks[job.id] = self.progress.add_task(f"{job.backend} {job.id}", total=None, info="")
            metric = self.store.last_metric(job.id)
            info = job.status.value
            if metric and metric.loss is not None:
                info += f"  loss {metric.loss:.4f}"
            if metric and metric.valid_loss is not None:
                info += f"  valid {metric.valid_loss:.4f}"
            total = metric.total_steps if metric else None
            done = metric.step if metric else 0
            if job.status.terminal and total:
                done = total if job.status.value == "succeeded" else done
            self.progress.update(self.tasks[job.id], total=total, completed=done, info=info)


class EvalProgress:
    def __init__(self, console: Console):
        self.progress = _progress(console)
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> EvalProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, target: str, done: int, total: int) -> None:
        if target not in self.tasks:
            self.tasks[target] = self.progress.add_task(f"eval {target}", total=total, info="")
        self.progress.update(self.tasks[target], completed=done)
