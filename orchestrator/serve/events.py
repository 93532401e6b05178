"""Server-sent events, as OpenAI streams: `data: {json}` per chunk (with `event: type` for the Responses API),
`data: [DONE]` at the end of chat and text completions, and an error mid-stream as a last `data: {"error": …}`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import StreamingResponse

from fto.orchestrator.serve.errors import ApiError


def event_stream(chunks: AsyncIterator[dict[str, Any]], done: bool = True, typed: bool = False) -> StreamingResponse:
    """A text/event-stream response of `chunks` (`typed`: each also names its `type` in an `event:` line)."""

    async def lines() -> AsyncIterator[bytes]:
        try:
            async for chunk in chunks:
                head = f"event: {chunk['type']}\n" if typed else ""
                yield f"{head}data: {json.dumps(chunk, separators=(',', ':'))}\n\n".encode()
        except ApiError as exc:  # the status line has gone: the error travels as the last event
            yield f"data: {json.dumps({'error': exc.body()})}\n\n".encode()
            return
        if done:
            yield b"data: [DONE]\n\n"

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(lines(), media_type="text/event-stream", headers=headers)
