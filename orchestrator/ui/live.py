"""Live updates: one watcher of the store for every open page, which pages follow over server-sent events.

The watcher asks the store whether another process wrote (SQLite's data_version, PostgreSQL's NOTIFY: no table is
read while nothing happens) and moves a version number; each page's event stream waits for the number to move.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

INTERVAL = 0.5  # seconds between looks at the store
HEARTBEAT = 15.0  # a comment this often keeps proxies from closing an idle stream


class Changes:
    """A version number that moves when the store changes; started with the first page that listens."""

    def __init__(self, changed: Callable[[], Awaitable[bool]], interval: float = INTERVAL):
        self.changed, self.interval = changed, interval
        self.version = 0
        self._moved = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def bump(self) -> None:
        """Tell every page to refresh (this process wrote: the store does not report its own writes)."""
        self.version += 1
        self._moved.set()
        self._moved = asyncio.Event()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if await self.changed():
                self.bump()

    async def wait(self, seen: int, timeout: float) -> int:
        """The version, once it differs from `seen` (or `timeout` passes)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._watch())
        if self.version == seen:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._moved.wait(), timeout)
        return self.version

    async def stream(self) -> AsyncIterator[str]:
        """Server-sent events: `changed` with the version each time the store changes, a comment while idle."""
        seen = self.version
        yield "retry: 2000\n\n"
        while True:
            version = await self.wait(seen, HEARTBEAT)
            if version == seen:
                yield ": idle\n\n"
                continue
            seen = version
            yield f"event: changed\ndata: {version}\n\n"
