"""The storage_path a Ray cluster shares: a folder (NFS, or this machine's disk in tests) or an object store URL
(s3://, gs://, …). Copies go through pyarrow's filesystems, as Ray Train's own do."""

from __future__ import annotations

import json
import os
from pathlib import Path


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
