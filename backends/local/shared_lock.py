"""A reentrant lock the generation engine hands over between its steps.

The engine takes the lock for every decoding step and takes it again at once: with a plain lock, a thread that
wants it (a request being tokenised) may wait many steps, since the engine's thread usually wins the race. Here a
thread announces that it waits, and the engine lets it in before its next step.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

HANDOVER_SECONDS = 0.005  # the longest the engine waits for announced threads to take their turn


class SharedLock:
    """An RLock with a count of the threads waiting for it, so its busiest holder can step aside."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._waiting = 0
        self._count = threading.Lock()

    def __enter__(self) -> SharedLock:
        with self._count:
            self._waiting += 1
        self._lock.acquire()
        with self._count:
            self._waiting -= 1
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._lock.release()

    def hand_over(self) -> None:
        """Called without the lock: give threads already waiting for it their turn (briefly), then return."""
        deadline = time.perf_counter() + HANDOVER_SECONDS
        while self._waiting and time.perf_counter() < deadline:
            time.sleep(0.0001)
