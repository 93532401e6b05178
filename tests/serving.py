"""`fto serve` started as users start it (the real CLI, in its own process) on a free 127.0.0.1 port."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServeProcess:
    def __init__(self, home: Path, *args: str, env: dict[str, str] | None = None):
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "serve", "--port", str(self.port), *args],
            env={**os.environ, "FTO_HOME": str(home), **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"fto serve exited: {self.process.stdout.read().decode()}")  # type: ignore[union-attr]
            try:
                httpx.get(f"{self.url}/models", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("fto serve did not start")

    def stop(self) -> None:
        """Stop the server and any training worker it left (workers outlive servers on purpose)."""
        self.process.terminate()
        self.process.wait(timeout=10)
        for status in (self.home / "backends" / "serve" / "jobs").glob("*/status.json"):
            pid = json.loads(status.read_text()).get("pid")
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
