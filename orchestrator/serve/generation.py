"""From a request to the local backend's engine and back: the model's folder, the prompt's fit, and the pieces the
engine's thread emits delivered to the request's coroutine (a client that goes away cancels its sequences)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from fto.orchestrator.serve.errors import ApiError, Invalid
from fto.orchestrator.serve.state import state


async def model_path(request: Request, model_id: str | None) -> str:
    """The folder (or Hugging Face cache id) of a served model; a 404 naming it when there is none."""
    found = await run_in_threadpool(state(request).jobs.models)
    if model_id is None or model_id not in found:
        raise ApiError(404, f"The model '{model_id}' does not exist", param="model", code="model_not_found")
    path = found[model_id][0]
    if path is None:
        raise ApiError(
            404, f"The model '{model_id}' is built by its first fine-tuning job; none has run yet", param="model"
        )
    return path


def generator(request: Request) -> Any:
    """The local backend's loaded models (fto.backends.local.generate.Generator)."""
    return state(request).jobs.backend.generator()


async def call(request: Request, method: str, *args: Any) -> Any:
    """A generator method, off the event loop; a model that cannot be loaded is a 404 naming the model."""
    try:
        return await run_in_threadpool(getattr(generator(request), method), *args)
    except FileNotFoundError as exc:
        raise ApiError(404, str(exc), param="model", code="model_not_found") from None


def check_sequences(request: Request, count: int, param: str) -> None:
    """A 400 naming the limit when one request asks for more sequences (prompts × n) than the server allows."""
    limit = state(request).config.max_seqs_per_request
    if count > limit:
        raise Invalid(
            f"this request asks for {count} sequences (prompts × n); the limit is {limit} per request "
            "(`fto serve --max-seqs-per-request`)",
            param,
        )


async def check_fits(request: Request, path: str, prompt_tokens: int, max_tokens: int, param: str) -> None:
    """A 400 when prompt and reply cannot fit the model's context (checked alone, before joining a batch)."""
    context = await call(request, "context", path)
    if context and prompt_tokens + max_tokens > context:
        raise Invalid(
            f"the prompt has {prompt_tokens} tokens and the reply may have {max_tokens}: together more than this "
            f"model's context of {context} tokens",
            param,
        )


async def pieces(
    request: Request, path: str, prompt: Sequence[int], sampling: Any, sequences: int = 1
) -> AsyncIterator[Any]:
    """The engine's pieces of one sequence of a request that asks for `sequences`, as they come; the last has a
    finish_reason (or an error)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()

    def emit(piece: Any) -> None:  # runs on the engine's thread
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is listening any more
            loop.call_soon_threadsafe(queue.put_nowait, piece)

    engine = await run_in_threadpool(generator(request).engine)
    cancel = engine.submit(path, list(prompt), sampling, emit, group=id(request.scope), sequences=sequences)
    try:
        while True:
            piece = await queue.get()
            if piece.error:
                raise ApiError(500, f"generation failed: {piece.error}", kind="server_error")
            yield piece
            if piece.finish_reason:
                return
    finally:
        cancel()


async def merged(streams: list[AsyncIterator[Any]]) -> AsyncIterator[tuple[int, Any]]:
    """The pieces of several sequences (the `n` choices), tagged by index, as each arrives."""
    queue: asyncio.Queue[tuple[int, Any] | BaseException] = asyncio.Queue()

    async def pump(index: int, stream: AsyncIterator[Any]) -> None:
        try:
            async for piece in stream:
                await queue.put((index, piece))
        except BaseException as exc:
            await queue.put(exc)

    tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(streams)]
    try:
        finished = 0
        while finished < len(streams):
            item = await queue.get()
            if isinstance(item, BaseException):
                raise item
            finished += item[1].finish_reason is not None
            yield item
    finally:
        for task in tasks:
            task.cancel()


@dataclass
class Output:
    """One whole sequence: its text, tokens, why it ended and its usage."""

    text: str = ""
    tokens: list[Any] = field(default_factory=list)
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, piece: Any) -> None:
        """Append a piece of the sequence."""
        self.text += piece.text
        self.tokens += piece.tokens
        if piece.finish_reason:
            self.finish_reason = piece.finish_reason
            self.prompt_tokens, self.completion_tokens = piece.prompt_tokens, piece.completion_tokens


class ClientGone(Exception):
    """The client of a request that is not streamed went away: its sequences were cancelled."""


async def collect(streams: list[AsyncIterator[Any]], request: Request) -> list[Output]:
    """Every sequence whole, generated together; cancelled as soon as the client disconnects (as a stream is),
    so a request nobody waits for does not keep the engine busy."""
    outputs = [Output() for _ in streams]

    async def gather() -> None:
        async for index, piece in merged(streams):
            outputs[index].add(piece)

    work = asyncio.ensure_future(gather())
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (work, gone):
            if not task.done():
                task.cancel()
    if not work.done() or work.cancelled():
        with contextlib.suppress(asyncio.CancelledError):
            await work  # its streams' cleanup cancels every sequence in the engine
        raise ClientGone
    work.result()  # a generation error, raised as the request's own
    return outputs


async def _disconnected(request: Request) -> None:
    """Returns when the client disconnects (the body was read already: the next message says so)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def usage(outputs: Sequence[Output], prompt_tokens: int | None = None) -> dict[str, int]:
    """OpenAI's usage: the prompt once (shared by `n` choices), every choice's completion tokens."""
    prompt = outputs[0].prompt_tokens if prompt_tokens is None else prompt_tokens
    completion = sum(o.completion_tokens for o in outputs)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
