"""Files kept where a team shares them: a folder, or an object store URL (s3://, gs://, …) — a Ray cluster's
storage_path, an experiment's reports under FTO_ARTIFACTS. Copies go through pyarrow's filesystems (as Ray
Train's own do); credentials come from the environment (AWS_*, GOOGLE_*)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fto.orchestrator.errors import ConfigError, FtoError


def is_url(location: str) -> bool:
    """Whether `location` is an object store URL rather than a folder."""
    return "://" in location and not location.startswith("file://")


def publish(local: Path, url: str) -> None:
    """Copy a file or folder to `url` (the folder's contents go under it)."""
    from pyarrow import fs

    target, path = fs.FileSystem.from_uri(url)
    if local.is_dir():
        target.create_dir(path, recursive=True)
    fs.copy_files(str(local), path, source_filesystem=fs.LocalFileSystem(), destination_filesystem=target)


def localize(url: str, cache: Path) -> Path:
    """A local copy of the folder at `url` (downloaded once; an adapter's base is localized with it)."""
    from pyarrow import fs

    name = url.split("://", 1)[1].strip("/").replace("/", "_").replace("?", "_")
    local = cache / name
    if not local.exists():
        source, path = fs.FileSystem.from_uri(url)
        partial = local.with_name(local.name + ".partial")
        partial.mkdir(parents=True, exist_ok=True)
        fs.copy_files(path, str(partial), source_filesystem=source, destination_filesystem=fs.LocalFileSystem())
        os.replace(partial, local)
    adapter_config = local / "adapter_config.json"
    if adapter_config.is_file():  # the base is named by URL: point the local copy at a local copy of it
        config = json.loads(adapter_config.read_text())
        base = config.get("base_model_name_or_path") or ""
        if is_url(base):
            config["base_model_name_or_path"] = str(localize(base, cache))
            adapter_config.write_text(json.dumps(config, indent=2))
    return local


def keep(store: Any, experiment_id: str, folder: Path, names: list[str]) -> dict[str, str]:
    """Record where an experiment's files are: here, or (with FTO_ARTIFACTS set to a URL) copied under
    FTO_ARTIFACTS/EXPERIMENT/; returns name → where."""
    shared = os.environ.get("FTO_ARTIFACTS", "").rstrip("/")
    if shared and not is_url(shared):
        raise ConfigError(f"{shared!r} is not an object store URL: use one such as s3://bucket/prefix",
                          field="FTO_ARTIFACTS")  # fmt: skip
    kept = {}
    for name in names:
        local = folder / name
        if not local.is_file():
            continue
        where = str(local)
        if shared:
            where = f"{shared}/{experiment_id}/{name}"
            try:
                publish(local, where)
            except (OSError, ValueError) as exc:  # pyarrow's errors: no such bucket, no credentials, bad URL
                raise FtoError(f"FTO_ARTIFACTS: cannot copy {name} to {where}: {exc}") from None
        store.save_artifact(experiment_id, name, where)
        kept[name] = where
    return kept
