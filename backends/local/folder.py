"""A local job's folder: the worker writes status, events and metrics here; the backend reads them.

This is the local backend's "provider API". It must not import torch: the poller reads it on every tick.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fto.schemas import JobEvent, JobStatus, Metric, ProviderJob


class JobFolder:
    """A local job's folder: its config, status, events, metrics, log and outputs, written by the worker."""

    def __init__(self, path: Path):
        self.path = path
        self.config = path / "config.json"
        self.status_file = path / "status.json"
        self.events_file = path / "events.jsonl"
        self.metrics_file = path / "metrics.jsonl"
        self.lock_file = path / "worker.lock"
        self.log_file = path / "worker.log"
        self.cancel_file = path / "cancel-requested"
        self.base_dir = path / "base"
        self.adapter_dir = path / "adapter"
        self.model_dir = path / "model"  # full fine-tuning
        self.merged_dir = path / "merged"
        self.checkpoints_dir = path / "checkpoints"

    # written by the worker -----------------------------------------------------------------------

    def write_status(self, status: JobStatus, **fields: Any) -> None:
        """Replace status.json atomically, so a reader never sees half a file."""
        current = self.read_status()
        current.update(fields, status=status.value, updated_at=_now())
        tmp = self.status_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(current))
        os.replace(tmp, self.status_file)

    def event(self, message: str, level: str = "info", **data: Any) -> None:
        """Append an event to the job's event log."""
        line = JobEvent(created_at=datetime.now(UTC), level=level, message=message, data=data)  # type: ignore[arg-type]
        _append(self.events_file, line.model_dump_json())

    def metric(self, metric: Metric) -> None:
        """Append a training metric to the job's metrics log."""
        if metric.created_at is None:  # readers order metrics among events by time
            metric = metric.model_copy(update={"created_at": datetime.now(UTC)})
        _append(self.metrics_file, metric.model_dump_json(exclude_none=True))

    def saved_checkpoint(self, path: Path) -> None:
        """Called once a checkpoint file is written; a folder whose storage is elsewhere copies it there."""

    # read by the backend -------------------------------------------------------------------------

    def read_status(self) -> dict[str, Any]:
        """The worker's last written status (empty when it has written none)."""
        try:
            return json.loads(self.status_file.read_text())
        except FileNotFoundError:
            return {}

    def worker_alive(self) -> bool:
        """The worker holds an exclusive lock on worker.lock for its whole life; the OS drops it on exit."""
        try:
            fd = os.open(self.lock_file, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing also releases the lock if we took it
        return False

    def spawn(self, command: Sequence[str], *flags: str) -> None:
        """Start the process that works on this job (`command`, the lock's fd, `flags`), detached:
        it outlives whoever started it, holds worker.lock for its whole life, and writes its output to worker.log."""
        # Take the worker's lock here and hand it over, so there is no moment when a fresh job looks dead.
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with open(self.log_file, "ab") as log:
                process = subprocess.Popen(
                    [*command, str(fd), *flags],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    pass_fds=(fd,),
                    start_new_session=True,  # survives the fto process that started it (Ctrl-C, kill -9)
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                )
        finally:
            os.close(fd)
        # Reaped when it ends, so a long-lived parent (`fto serve`) keeps no zombie; the worker never waits on us.
        threading.Thread(target=process.wait, name=f"reap-{process.pid}", daemon=True).start()
        self.write_status(JobStatus.QUEUED, pid=process.pid)

    def state(self) -> ProviderJob | None:
        """The job as its worker last told it (None: no status yet); a worker gone before the end is a failure,
        or a cancellation when one was asked for."""
        alive = self.worker_alive()  # before reading status: a worker writes its last status, then exits
        state = self.read_status()
        if not state:
            return None
        status = JobStatus(state["status"])
        error = state.get("error")
        if not status.terminal and not alive:
            if self.cancel_file.exists():
                status = JobStatus.CANCELLED
            else:
                status = JobStatus.FAILED
                error = f"worker process exited unexpectedly; last lines of {self.log_file}:\n{self.log_tail()}"
            self.write_status(status, error=error)
        return ProviderJob(
            status=status,
            base_model=state.get("base_model"),
            fine_tuned_model=state.get("fine_tuned_model"),
            trained_tokens=state.get("trained_tokens"),
            error=error,
        )

    def read_since(self, cursor: str | None) -> tuple[list[JobEvent], list[Metric], str]:
        """Complete lines appended after the cursor (byte offsets into events and metrics)."""
        event_pos, metric_pos = (int(x) for x in cursor.split(":")) if cursor else (0, 0)
        event_lines, event_pos = _read_lines(self.events_file, event_pos)
        metric_lines, metric_pos = _read_lines(self.metrics_file, metric_pos)
        events = [JobEvent.model_validate_json(x) for x in event_lines]
        metrics = [Metric.model_validate_json(x) for x in metric_lines]
        return events, metrics, f"{event_pos}:{metric_pos}"

    def log_tail(self, lines: int = 5) -> str:
        """The last lines of the worker's log, for error messages."""
        try:
            return "\n".join(self.log_file.read_text(errors="replace").strip().splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def kept_copy(root: Path, path: Path) -> Path:
    """`path` copied into `root`/files under its content's hash: the same data is stored once, and a job keeps its
    own copy whatever happens to the original."""
    import hashlib
    import shutil

    target = root / "files" / f"{hashlib.sha256(path.read_bytes()).hexdigest()[:24]}.jsonl"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return target


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _append(path: Path, line: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def _read_lines(path: Path, offset: int) -> tuple[list[str], int]:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1  # a line still being written is left for next time
    lines = data[:end].decode("utf-8").splitlines()
    return [x for x in lines if x.strip()], offset + end
