"""What every route of `fto serve` shares: its settings, files and jobs (generation goes through the jobs'
local backend)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.requests import Request

from fto.orchestrator.browser_guard import LOOPBACK_NAMES
from fto.orchestrator.serve.files import FileStore
from fto.orchestrator.serve.jobs import ServeJobs

MB = 1024 * 1024


@dataclass
class ServeConfig:
    """How `fto serve` runs: where it keeps files, which base models it offers, its key and its limits."""

    root: Path
    base_models: Sequence[str] = ("embedded:tiny-llama",)
    api_key: str | None = None  # None: no auth (allowed on loopback only; the CLI enforces it)
    max_file_bytes: int = 512 * MB  # one file or upload part, as OpenAI's Files API
    max_json_bytes: int = 16 * MB
    body_seconds: float = 120.0  # a request body must arrive within this (a trickling client is cut off: 408)
    max_connections: int = 256  # the ASGI server answers 503 beyond this many connections at once
    local_options: dict[str, Any] = field(default_factory=dict)
    allowed_hosts: tuple[str, ...] = LOOPBACK_NAMES  # Host names answered (DNS rebinding defence)
    max_seqs_per_request: int = 256  # prompts × n of one generation request


@dataclass
class ServeState:
    """The server's parts, built once per app."""

    config: ServeConfig
    files: FileStore
    jobs: ServeJobs

    @classmethod
    def build(cls, config: ServeConfig) -> ServeState:
        """Files under the config's root and jobs in the one Store, over the local backend."""
        files = FileStore(config.root)
        jobs = ServeJobs(files, config.base_models, config.local_options)
        return cls(config, files, jobs)


def state(request: Request) -> ServeState:
    """The state of the app that received `request`."""
    found: ServeState = request.app.state.serve
    return found
