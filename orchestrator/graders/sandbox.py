"""Runs a `python` grader's `grade(sample, item)` in its own process, a sample at a time, within its limits.

A sample that hangs past the timeout, or a process that dies, costs that sample an error and the process a
restart; every other sample is graded. The process gets no environment beyond PATH and a scratch HOME, so no API
key reaches it (sandbox_child.py sets the rest of the limits from inside).
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

from fto.orchestrator.paths import fto_home

CHILD = Path(__file__).with_name("sandbox_child.py")
MAX_REPLY = 1 << 20  # a grader's reply is a number: a megabyte of output is a broken grader


class PythonSandbox:
    """One grader's process, restarted when a sample kills it."""

    def __init__(self, source: str, timeout: float, memory_mb: int) -> None:
        self.source, self.timeout, self.memory_mb = source, timeout, memory_mb
        self.process: subprocess.Popen[bytes] | None = None
        self.scratch = tempfile.TemporaryDirectory(prefix="fto-grader-")

    def _start(self) -> subprocess.Popen[bytes]:
        env = {"PATH": "/usr/bin:/bin", "HOME": self.scratch.name, "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
        process = subprocess.Popen(
            [sys.executable, "-I", str(CHILD)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=self.scratch.name,
            start_new_session=True,  # killed as a group: a grader cannot leave anything behind
        )
        denied = [str(fto_home()), str(Path.home() / ".fto"), str(Path.home())]
        config = {"source": self.source, "scratch": self.scratch.name, "memory_mb": self.memory_mb,
                  "cpu_seconds": int(max(60, self.timeout * 4)), "denied": denied}  # fmt: skip
        assert process.stdin is not None
        process.stdin.write((json.dumps(config) + "\n").encode())
        process.stdin.flush()
        return process

    def _stop(self) -> None:
        if self.process is not None:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, 9)
            self.process.wait()
            self.process = None

    def grade(self, sample: dict[str, Any], item: dict[str, Any]) -> tuple[float | None, str | None]:
        """(value, None) or (None, why this sample has no value)."""
        if self.process is None or self.process.poll() is not None:
            self._stop()
            self.process = self._start()
        process = self.process
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write((json.dumps({"sample": sample, "item": item}, default=str) + "\n").encode())
            process.stdin.flush()
        except BrokenPipeError:
            self._stop()
            return None, "the grader's process exited before this sample"
        line = self._read_line(process)
        if line is None:
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=0.5)  # at its end of output, a process that quit is gone in moments
            code = process.poll()
            self._stop()
            if code is None:
                return None, f"timed out after {self.timeout:g} s"
            return None, f"the grader's process exited (code {code}): out of memory or CPU time, or it quit"
        try:
            answer = json.loads(line)
        except json.JSONDecodeError:
            self._stop()
            return None, "the grader wrote to standard output; return the value instead"
        return (float(answer["value"]), None) if "value" in answer else (None, str(answer["error"]))

    def _read_line(self, process: subprocess.Popen[bytes]) -> bytes | None:
        """One reply line, or None at the timeout or when the process ends first."""
        assert process.stdout is not None
        deadline = time.monotonic() + self.timeout
        buffer = b""
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            while b"\n" not in buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    return None
                chunk = os.read(process.stdout.fileno(), 65536)
                if not chunk or len(buffer) > MAX_REPLY:
                    return None
                buffer += chunk
        return buffer.split(b"\n", 1)[0]

    def close(self) -> None:
        """Stop the process and remove its scratch folder."""
        self._stop()
        self.scratch.cleanup()
