"""Servers for tests on free 127.0.0.1 ports: `fto serve` started as users start it (the real CLI, own process)."""

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


def wait_until_up(url: str, process: subprocess.Popen, seconds: float = 30) -> None:
    """Return once `url` answers; fail early, with its output, if the server process exits."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode() if process.stdout else ""
            raise RuntimeError(f"the server exited: {output}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing answered at {url} within {seconds} s")


class ServeProcess:
    def __init__(self, home: Path, *args: str, env: dict[str, str] | None = None):
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fto.orchestrator", "serve", "--port", str(self.port), *args],
            env={**os.environ, "FTO_HOME": str(home), **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        wait_until_up(f"{self.url}/models", self.process)

    def stop(self) -> None:
        """Stop the server and any training worker it left (workers outlive servers on purpose)."""
        self.process.terminate()
        self.process.wait(timeout=10)
        for status in (self.home / "backends" / "serve" / "jobs").glob("*/status.json"):
            pid = json.loads(status.read_text()).get("pid")
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
