"""Concurrent chat requests for the same model and settings, generated as one batch.

An eval sends many requests at once; generating them one by one would leave the device mostly idle. Requests wait
a few milliseconds for company, then go to the local backend together (it batches with padding).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from starlette.concurrency import run_in_threadpool

from fto.backends.base import Backend, GenerationParams
from fto.schemas import Completion, Message


class Batcher:
    """Gathers concurrent chat requests for one model and settings into one batched generation."""

    def __init__(self, backend: Backend, max_batch: int = 32, gather_seconds: float = 0.005):
        self.backend, self.max_batch, self.gather_seconds = backend, max_batch, gather_seconds
        self._waiting: dict[tuple[str, str], list[tuple[Sequence[Message], asyncio.Future[Completion]]]] = {}
        self._device = asyncio.Lock()  # one batch on the device at a time

    async def complete(self, model: str, messages: Sequence[Message], params: GenerationParams) -> Completion:
        """One reply; requests arriving together for the same model and settings are generated as one batch."""
        key = (model, params.model_dump_json())  # only identical settings share a batch
        future: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        group = self._waiting.setdefault(key, [])
        group.append((messages, future))
        if len(group) == 1:  # the first of a group starts its batch; later ones join it until it runs
            asyncio.get_running_loop().create_task(self._run(key, model, params))
        return await future

    async def _generate(
        self, model: str, chunk: list[tuple[Sequence[Message], asyncio.Future[Completion]]], params: GenerationParams
    ) -> None:
        """Answer a chunk together; if that fails, each request alone, so only a faulty one gets the error."""
        try:
            replies: list[Any] = await run_in_threadpool(
                self.backend.complete_many, model, [m for m, _ in chunk], params
            )
        except Exception as exc:
            if len(chunk) == 1:
                chunk[0][1].set_exception(exc)
                return
            for one in chunk:
                await self._generate(model, [one], params)
            return
        for (_, future), reply in zip(chunk, replies, strict=True):
            future.set_result(reply)

    async def _run(self, key: tuple[str, str], model: str, params: GenerationParams) -> None:
        group: list[tuple[Sequence[Message], asyncio.Future[Completion]]] = []
        try:
            await asyncio.sleep(self.gather_seconds)
            async with self._device:
                group = self._waiting.pop(key, [])
                for start in range(0, len(group), self.max_batch):
                    chunk = group[start : start + self.max_batch]
                    await self._generate(model, chunk, params)
        except BaseException as exc:  # cancelled, or broken: no request may be left waiting forever
            for _, future in group or self._waiting.pop(key, []):
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("generation cancelled"))
            raise
