"""/responses: the core of OpenAI's Responses API — text or message input, one text output, streamed as typed
events or whole. Responses are not stored (`store` is accepted and has no effect)."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from openai.types.responses import (
    Response as ResponseObject,
)
from openai.types.responses import (
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseIncompleteEvent,
    ResponseInProgressEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
)
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fto.orchestrator.serve.errors import Invalid
from fto.orchestrator.serve.events import event_stream
from fto.orchestrator.serve.generation import Output, call, check_fits, collect, model_path, pieces
from fto.orchestrator.serve.requests import ResponseRequest, parse_body
from fto.orchestrator.serve.responses import as_openai, respond

DEFAULT_MAX_TOKENS = 256


async def create(request: Request) -> Response:
    """POST /responses."""
    from fto.backends.local.engine import Sampling

    body = parse_body(ResponseRequest, await request.body())
    if body.tools:
        raise Invalid("tools are not offered by fto serve's responses; use chat completions for tool calls", "tools")
    if body.previous_response_id is not None:
        raise Invalid("responses are not stored by fto serve, so none can be continued", "previous_response_id")
    path = await model_path(request, body.model)
    prompt = await call(request, "encode_chat", path, body.messages(), None)
    max_tokens = body.max_output_tokens or DEFAULT_MAX_TOKENS
    await check_fits(request, path, len(prompt), max_tokens, "input")
    sampling = Sampling(
        max_new_tokens=max_tokens, temperature=float(body.temperature), top_p=float(body.top_p), trim=True
    )
    stream = pieces(request, path, prompt, sampling)
    ids = {"response": f"resp_{secrets.token_hex(24)}", "message": f"msg_{secrets.token_hex(24)}"}
    if body.stream:
        return event_stream(_events(ids, body, stream), done=False, typed=True)
    (output,) = await collect([stream], request)
    return respond(ResponseObject, _response(ids, body, output))


def _message(ids: dict[str, str], text: str | None, status: str) -> dict[str, Any]:
    content = [] if text is None else [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {"type": "message", "id": ids["message"], "status": status, "role": "assistant", "content": content}


def _response(ids: dict[str, str], body: ResponseRequest, output: Output | None) -> dict[str, Any]:
    """The response object: in progress (no output yet), completed, or incomplete at max_output_tokens."""
    status = "in_progress" if output is None else "incomplete" if output.finish_reason == "length" else "completed"
    data: dict[str, Any] = {
        "id": ids["response"],
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": body.model,
        "instructions": body.instructions,
        "max_output_tokens": body.max_output_tokens,
        "metadata": body.metadata or {},
        "temperature": float(body.temperature),
        "top_p": float(body.top_p),
        "parallel_tool_calls": False,
        "tool_choice": "none",
        "tools": [],
        "text": {"format": {"type": "text"}},
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "output": [] if output is None else [_message(ids, output.text, status)],
    }  # no usage before the end: the spec types it as an object, never null
    if output is not None:
        data["usage"] = {
            "input_tokens": output.prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": output.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": output.prompt_tokens + output.completion_tokens,
        }
    return data


async def _events(ids: dict[str, str], body: ResponseRequest, stream: AsyncIterator[Any]) -> AsyncIterator[dict]:
    """The Responses stream: created, in_progress, the output item and its text part opened, text deltas, the
    part and item done, then completed (or incomplete), each numbered in order."""
    number = 0

    def event(model: type[BaseModel], kind: str, **fields: Any) -> dict[str, Any]:
        nonlocal number
        number += 1
        return as_openai(model, {"type": kind, "sequence_number": number - 1, **fields})

    item = {"output_index": 0, "item_id": ids["message"]}
    part = {**item, "content_index": 0}
    yield event(ResponseCreatedEvent, "response.created", response=_response(ids, body, None))
    yield event(ResponseInProgressEvent, "response.in_progress", response=_response(ids, body, None))
    yield event(ResponseOutputItemAddedEvent, "response.output_item.added", output_index=0,
                item=_message(ids, None, "in_progress"))  # fmt: skip
    empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    yield event(ResponseContentPartAddedEvent, "response.content_part.added", **part, part=empty)
    output = Output()
    async for piece in stream:
        output.add(piece)
        if piece.text:
            yield event(ResponseTextDeltaEvent, "response.output_text.delta", **part, delta=piece.text, logprobs=[])
    final = _response(ids, body, output)
    text_part = {"type": "output_text", "text": output.text, "annotations": [], "logprobs": []}
    yield event(ResponseTextDoneEvent, "response.output_text.done", **part, text=output.text, logprobs=[])
    yield event(ResponseContentPartDoneEvent, "response.content_part.done", **part, part=text_part)
    yield event(ResponseOutputItemDoneEvent, "response.output_item.done", output_index=0, item=final["output"][0])
    if final["status"] == "incomplete":
        yield event(ResponseIncompleteEvent, "response.incomplete", response=final)
    else:
        yield event(ResponseCompletedEvent, "response.completed", response=final)


ROUTES = [Route("/responses", create, methods=["POST"])]
