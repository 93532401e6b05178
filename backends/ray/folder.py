"""A Ray job's folder on the training node: the local trainer writes it as on `local`, and each write is also
reported in the Ray job's log (how fto follows the job). With an object store as storage_path, the folder is on
the node's disk and every checkpoint and the final model are published to the store."""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fto.backends.local.folder import JobFolder
from fto.backends.ray.reports import Reporter
from fto.orchestrator import storage
from fto.schemas import JobStatus, Metric


class RayFolder(JobFolder):
    """The job's folder: under storage_path when that is a shared folder, else on this node (published to the URL)."""

    def __init__(self, storage_path: str, job_id: str, reporter: Reporter, attempt: str = ""):
        self.url = f"{storage_path.rstrip('/')}/{job_id}" if storage.is_url(storage_path) else None
        if self.url:  # each attempt starts from what the store holds, as on a fresh node
            path = Path(tempfile.gettempdir()) / "fto-ray" / job_id / (attempt or "run")
        else:
            path = Path(storage_path).expanduser() / job_id
        super().__init__(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.reporter = reporter
        self._published: set[Path] = set()

    def shared(self, value: Any) -> Any:
        """A path in this folder as the cluster's storage names it (its URL, with an object store)."""
        if self.url and isinstance(value, str) and value.startswith(str(self.path)):
            return self.url + value[len(str(self.path)) :]
        return value

    def write_status(self, status: JobStatus, **fields: Any) -> None:
        super().write_status(status, **fields)
        for name in ("base_model", "fine_tuned_model"):
            if isinstance(fields.get(name), str):
                self.publish(Path(fields[name]))
        self.reporter.report("status", {"status": status.value, **{k: self.shared(v) for k, v in fields.items()}})

    def event(self, message: str, level: str = "info", **data: Any) -> None:
        super().event(message, level, **data)
        if isinstance(data.get("checkpoint"), str):  # an adapter checkpoint eval may pick (checkpoint: best)
            self.publish(Path(data["checkpoint"]))
        shared = {k: self.shared(v) for k, v in data.items()}
        at = datetime.now(UTC).isoformat()
        self.reporter.report("event", {"created_at": at, "message": message, "level": level, "data": shared})

    def metric(self, metric: Metric) -> None:
        super().metric(metric)
        self.reporter.report("metric", json.loads(metric.model_dump_json(exclude_none=True)))

    def publish(self, local: Path) -> None:
        """Copy a folder of this job's (a model, an adapter) to the object store; with a shared folder, nothing to do.

        An adapter names its base by path; a base built in this folder is published too and named by its URL."""
        if not self.url or not local.is_dir() or not str(local).startswith(str(self.path)) or local in self._published:
            return
        self._published.add(local)
        adapter_config = local / "adapter_config.json"
        staged = local
        if adapter_config.is_file():
            config = json.loads(adapter_config.read_text())
            base = config.get("base_model_name_or_path") or ""
            if base.startswith(str(self.path)):
                self.publish(Path(base))
                staged = Path(tempfile.mkdtemp()) / local.name
                shutil.copytree(local, staged)
                config["base_model_name_or_path"] = self.shared(base)
                (staged / "adapter_config.json").write_text(json.dumps(config, indent=2))
        storage.publish(staged, str(self.shared(str(local))))
        if staged is not local:
            shutil.rmtree(staged.parent, ignore_errors=True)

    def saved_checkpoint(self, path: Path) -> None:
        """The training state for `fto resume`, in the store as soon as the trainer has written it here."""
        if self.url:
            storage.publish(path, f"{self.url}/checkpoints/{path.name}")

    def restore(self) -> None:
        """Fetch the job's checkpoints (and a base model built for it) from the object store before resuming."""
        if self.url is None:
            return
        from pyarrow import fs

        for name, local in (("checkpoints", self.checkpoints_dir), ("base", self.base_dir)):
            source, path = fs.FileSystem.from_uri(f"{self.url}/{name}")
            if source.get_file_info(path).type != fs.FileType.NotFound:
                local.mkdir(parents=True, exist_ok=True)
                fs.copy_files(path, str(local), source_filesystem=source, destination_filesystem=fs.LocalFileSystem())
