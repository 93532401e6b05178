"""/chat/completions: replies from base and fine-tuned local models, batched across concurrent requests."""

from __future__ import annotations

import secrets
import time

from openai.types.chat import ChatCompletion
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fto.backends.base import GenerationParams
from fto.orchestrator.data.formats.base import RecordError
from fto.orchestrator.data.formats.chat import parse_messages
from fto.orchestrator.serve.errors import ApiError, Invalid
from fto.orchestrator.serve.requests import ChatCompletionRequest, parse_body
from fto.orchestrator.serve.responses import respond
from fto.orchestrator.serve.state import state

DEFAULT_MAX_TOKENS = 256


async def create(request: Request) -> Response:
    """POST /chat/completions (and Azure's /openai/deployments/{deployment}/chat/completions)."""
    body = parse_body(ChatCompletionRequest, await request.body())
    if body.stream:
        raise Invalid("streaming is not supported by fto serve; send stream: false", "stream")
    try:
        messages = parse_messages(body.raw_messages(), lambda *_: None)
    except RecordError as exc:
        raise Invalid(exc.message, exc.field or "messages") from None
    max_tokens = body.max_completion_tokens or body.max_tokens or DEFAULT_MAX_TOKENS
    params = GenerationParams(max_new_tokens=max_tokens, temperature=body.temperature, seed=body.seed or 0)
    model_id = request.path_params.get("deployment") or body.model
    found = await run_in_threadpool(state(request).jobs.models)
    if model_id is None or model_id not in found:
        raise ApiError(404, f"The model '{model_id}' does not exist", param="model", code="model_not_found")
    path = found[model_id][0]
    if path is None:
        raise ApiError(
            404, f"The model '{model_id}' is built by its first fine-tuning job; none has run yet", param="model"
        )
    try:  # checked alone, before it joins a batch: a request that cannot fit fails by itself, at once
        await run_in_threadpool(state(request).jobs.backend.check_prompt, path, messages, params)
    except ValueError as exc:
        raise Invalid(str(exc), "messages") from None
    reply = await state(request).batcher.complete(path, messages, params)
    prompt_tokens, completion_tokens = reply.input_tokens or 0, reply.output_tokens or 0
    return respond(
        ChatCompletion,
        {
            "id": f"chatcmpl-{secrets.token_hex(12)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model_id,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.text, "refusal": None},
                    "finish_reason": "length" if completion_tokens >= max_tokens else "stop",
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        },
    )


ROUTES = [Route("/chat/completions", create, methods=["POST"])]
