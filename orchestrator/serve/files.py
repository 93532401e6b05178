"""Files and multi-part uploads of `fto serve`, kept under one folder.

Ids are generated here and checked against a strict pattern before any path is built from them, so a request
can never name a file outside the folder.
"""

from __future__ import annotations

import builtins
import json
import os
import re
import secrets
import shutil
import time
from pathlib import Path
from typing import Any, BinaryIO

from fto.orchestrator.serve.errors import Invalid, NotFound

FILE_ID = re.compile(r"^file-[0-9a-f]{24}$")
UPLOAD_ID = re.compile(r"^upload_[0-9a-f]{24}$")
PART_ID = re.compile(r"^part_[0-9a-f]{24}$")
UPLOAD_TTL = 3600  # seconds an unfinished upload stays open, as OpenAI's


class FileStore:
    """Files and multi-part uploads under one folder, named by ids that cannot leave it."""

    def __init__(self, root: Path):
        self.root = root
        self.files = root / "files"
        self.uploads = root / "uploads"
        self.files.mkdir(parents=True, exist_ok=True)
        self.uploads.mkdir(parents=True, exist_ok=True)

    # files ------------------------------------------------------------------------------------------

    def path(self, file_id: str) -> Path:
        """Where a file's content is (404 for an id that is malformed or unknown)."""
        if not FILE_ID.match(file_id):
            raise NotFound(f"No such File object: {file_id}")
        path = self.files / f"{file_id}.jsonl"
        if not path.is_file():
            raise NotFound(f"No such File object: {file_id}")
        return path

    def create(self, source: BinaryIO | Path, filename: str, purpose: str) -> dict[str, Any]:
        """Store a file's bytes; returns the file object."""
        file_id = f"file-{secrets.token_hex(12)}"
        target = self.files / f"{file_id}.jsonl"
        tmp = target.with_name(target.name + ".tmp")
        if isinstance(source, Path):
            shutil.copyfile(source, tmp)
        else:
            with open(tmp, "wb") as out:
                shutil.copyfileobj(source, out, 1024 * 1024)
        meta = {
            "id": file_id,
            "object": "file",
            "bytes": tmp.stat().st_size,
            "created_at": int(time.time()),
            "filename": Path(filename).name or "upload.jsonl",  # a client's name, shown back, never used as a path
            "purpose": purpose,
            "status": "processed",
        }
        _write_json(self.files / f"{file_id}.json", meta)
        os.replace(tmp, target)
        return meta

    def get(self, file_id: str) -> dict[str, Any]:
        """A file object."""
        self.path(file_id)
        return json.loads((self.files / f"{file_id}.json").read_text())

    def list(self, purpose: str | None = None) -> list[dict[str, Any]]:
        """File objects, newest first, of one purpose or all."""
        found = [json.loads(p.read_text()) for p in self.files.glob("file-*.json")]
        found = [f for f in found if purpose is None or f["purpose"] == purpose]
        return sorted(found, key=lambda f: (f["created_at"], f["id"]), reverse=True)

    def delete(self, file_id: str) -> None:
        """Delete a file and its record."""
        path = self.path(file_id)
        path.unlink()
        (self.files / f"{file_id}.json").unlink(missing_ok=True)

    # uploads (the Uploads API: parts, then one file) ----------------------------------------------

    def _upload_dir(self, upload_id: str) -> Path:
        folder = self.uploads / upload_id
        if not UPLOAD_ID.match(upload_id) or not folder.is_dir():
            raise NotFound(f"No such Upload object: {upload_id}")
        return folder

    def create_upload(self, filename: str, purpose: str, size: int, mime_type: str) -> dict[str, Any]:
        """Open a multi-part upload of `size` bytes."""
        upload_id = f"upload_{secrets.token_hex(12)}"
        now = int(time.time())
        meta = {
            "id": upload_id,
            "object": "upload",
            "bytes": size,
            "created_at": now,
            "expires_at": now + UPLOAD_TTL,
            "filename": Path(filename).name or "upload.jsonl",
            "purpose": purpose,
            "status": "pending",
            "mime_type": mime_type,
        }
        folder = self.uploads / upload_id
        folder.mkdir()
        _write_json(folder / "upload.json", meta)
        return meta

    def upload(self, upload_id: str) -> dict[str, Any]:
        """An upload's record (expired when left open past its time)."""
        meta = json.loads((self._upload_dir(upload_id) / "upload.json").read_text())
        if meta["status"] == "pending" and meta["expires_at"] < time.time():
            meta["status"] = "expired"
        return meta

    def add_part(self, upload_id: str, data: BinaryIO) -> dict[str, Any]:
        """Store one part of an open upload."""
        meta = self.upload(upload_id)
        if meta["status"] != "pending":
            raise Invalid(f"Upload {upload_id} is {meta['status']}; parts can only be added while it is pending")
        part_id = f"part_{secrets.token_hex(12)}"
        with open(self._upload_dir(upload_id) / f"{part_id}.part", "wb") as out:
            shutil.copyfileobj(data, out, 1024 * 1024)
        return {"id": part_id, "object": "upload.part", "created_at": int(time.time()), "upload_id": upload_id}

    def complete_upload(self, upload_id: str, part_ids: builtins.list[str]) -> dict[str, Any]:
        """Join the listed parts, in order, into one file; the sizes must add up to the declared bytes."""
        meta = self.upload(upload_id)
        if meta["status"] != "pending":
            raise Invalid(f"Upload {upload_id} is {meta['status']}")
        folder = self._upload_dir(upload_id)
        parts: builtins.list[Path] = []
        for part_id in part_ids:
            part = folder / f"{part_id}.part"
            if not PART_ID.match(part_id) or not part.is_file():
                raise Invalid(f"No such part in upload {upload_id}: {part_id}", param="part_ids")
            parts.append(part)
        joined = folder / "joined"
        with open(joined, "wb") as out:
            for part in parts:  # in the order the client lists them, as OpenAI's
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out, 1024 * 1024)
        if joined.stat().st_size != meta["bytes"]:
            raise Invalid(
                f"the parts hold {joined.stat().st_size} bytes; the upload was created for {meta['bytes']}",
                param="part_ids",
            )
        meta["file"] = self.create(joined, meta["filename"], meta["purpose"])
        meta["status"] = "completed"
        _write_json(folder / "upload.json", meta)
        for leftover in (*folder.glob("*.part"), joined):
            leftover.unlink()
        return meta

    def cancel_upload(self, upload_id: str) -> dict[str, Any]:
        """Cancel an open upload and drop its parts."""
        meta = self.upload(upload_id)
        if meta["status"] != "pending":
            raise Invalid(f"Upload {upload_id} is {meta['status']}")
        meta["status"] = "cancelled"
        folder = self._upload_dir(upload_id)
        _write_json(folder / "upload.json", meta)
        for part in folder.glob("*.part"):
            part.unlink()
        return meta


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def public_upload(meta: dict[str, Any]) -> dict[str, Any]:
    """The Upload object as the API shows it (our bookkeeping fields removed)."""
    return {k: v for k, v in meta.items() if k != "mime_type"}
