"""/completions: a text prompt (or token ids) continued, or scored with `echo` and `logprobs` — what
log-likelihood evaluation (lm-eval's `local-completions`) asks for."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fto.orchestrator.serve.errors import Invalid
from fto.orchestrator.serve.events import event_stream
from fto.orchestrator.serve.generation import (
    Output,
    call,
    check_fits,
    check_sequences,
    collect,
    merged,
    model_path,
    pieces,
    usage,
)
from fto.orchestrator.serve.requests import CompletionRequest, parse_body
from fto.orchestrator.serve.responses import EchoCompletion as Completion
from fto.orchestrator.serve.responses import as_openai, respond


async def create(request: Request) -> Response:
    """POST /completions."""
    from fto.backends.local.engine import Sampling, TokenInfo

    body = parse_body(CompletionRequest, await request.body())
    if body.stream_options is not None and not body.stream:
        raise Invalid("stream_options is only allowed when stream is true", "stream_options")
    if body.suffix is not None:
        raise Invalid("suffix (text inserted after the completion) is not supported by fto serve", "suffix")
    path = await model_path(request, request.path_params.get("deployment") or body.model)
    prompts = await _prompts(request, path, body)
    check_sequences(request, len(prompts) * body.n, "n" if body.n > 1 else "prompt")
    streams, echoes = [], []
    for prompt, text in prompts:
        await check_fits(request, path, len(prompt), body.max_tokens, "prompt")
        echo: list[Any] = []
        if body.echo and body.logprobs is not None:  # the prompt's own tokens, scored
            scored = await call(request, "score", path, prompt, body.logprobs)
            names = await call(request, "decode", path, prompt)
            echo = [TokenInfo(name, lp, tuple(top)) for name, (lp, top) in zip(names, scored, strict=True)]
        for index in range(body.n):
            echoes.append((text if body.echo else "", echo))
            sampling = Sampling(
                max_new_tokens=body.max_tokens,
                temperature=float(body.temperature),
                top_p=float(body.top_p),
                seed=None if body.seed is None else body.seed + index,
                stop=body.stops(),
                logprobs=body.logprobs,
                end_token_logprob=True,  # as OpenAI shows it; lm-eval drops the last token, taking it for the reply
            )
            count = len(prompts) * body.n
            streams.append(pieces(request, path, prompt, sampling, count) if body.max_tokens else _nothing(len(prompt)))
    head = {"id": f"cmpl-{secrets.token_hex(12)}", "created": int(time.time()), "model": body.model}
    prompt_tokens = sum(len(prompt) for prompt, _ in prompts)  # each prompt counted once, however many choices
    if body.stream:
        return event_stream(_chunks(head, body, streams, echoes, prompt_tokens))
    outputs = await collect(streams, request)
    choices = [_choice(i, o, body, *echoes[i]) for i, o in enumerate(outputs)]
    return respond(
        Completion, {**head, "object": "text_completion", "choices": choices, "usage": usage(outputs, prompt_tokens)}
    )


async def _prompts(request: Request, path: str, body: CompletionRequest) -> list[tuple[list[int], str]]:
    """Each prompt as token ids and text (a prompt may be a string, strings, token ids or lists of them)."""
    single = isinstance(body.prompt, str) or (body.prompt and isinstance(body.prompt[0], int))
    raw: list[Any] = [body.prompt] if single else list(body.prompt)
    if not raw:
        raise Invalid("prompt must not be empty", "prompt")
    vocabulary = await call(request, "vocabulary_size", path)
    out = []
    for index, prompt in enumerate(raw):
        if isinstance(prompt, str):
            tokens = await call(request, "encode_text", path, prompt)
            out.append((tokens, prompt))
            continue
        if not prompt or any(not 0 <= t < vocabulary for t in prompt):
            raise Invalid(f"prompt[{index}]: token ids must be from 0 to {vocabulary - 1}, and at least one", "prompt")
        out.append((list(prompt), "".join(await call(request, "decode", path, prompt))))
    if not all(tokens for tokens, _ in out):
        raise Invalid("prompt: a prompt has no tokens", "prompt")
    return out


async def _nothing(prompt_tokens: int) -> AsyncIterator[Any]:
    """max_tokens 0: nothing generated (the prompt is only scored)."""
    from fto.backends.local.engine import Piece

    yield Piece("", [], finish_reason="length", prompt_tokens=prompt_tokens)


def _choice(index: int, output: Output, body: CompletionRequest, echo_text: str, echo: list[Any]) -> dict[str, Any]:
    text = echo_text + output.text
    return {
        "index": index,
        "text": text,
        "finish_reason": output.finish_reason,
        "logprobs": _logprobs(echo + output.tokens) if body.logprobs is not None else None,
    }


def _logprobs(tokens: list[Any]) -> dict[str, Any]:
    """The legacy completions shape: parallel lists of tokens, their log-probabilities, alternatives and offsets."""
    offsets, at = [], 0
    for token in tokens:
        offsets.append(at)
        at += len(token.token)
    return {
        "tokens": [t.token for t in tokens],
        "token_logprobs": [t.logprob for t in tokens],
        "top_logprobs": [dict(t.top) if t.logprob is not None else None for t in tokens],
        "text_offset": offsets,
    }


async def _chunks(
    head: dict[str, Any],
    body: CompletionRequest,
    streams: list[AsyncIterator[Any]],
    echoes: list[Any],
    prompt_tokens: int,
) -> AsyncIterator[dict[str, Any]]:
    """Text deltas per choice (the echoed prompt first), the finish, and optionally a last chunk with the usage."""
    outputs = [Output() for _ in streams]
    started: set[int] = set()

    def chunk(index: int, text: str, tokens: list[Any], finish: str | None) -> dict[str, Any]:
        choice = {"index": index, "text": text, "finish_reason": finish,
                  "logprobs": _logprobs(tokens) if body.logprobs is not None else None}  # fmt: skip
        return as_openai(Completion, {**head, "object": "text_completion", "choices": [choice]})

    async for index, piece in merged(streams):
        outputs[index].add(piece)
        text, tokens = piece.text, piece.tokens
        if index not in started:
            started.add(index)
            text, tokens = echoes[index][0] + text, echoes[index][1] + tokens
        if text or tokens or piece.finish_reason:
            yield chunk(index, text, tokens, piece.finish_reason)
    if body.usage_chunk():
        yield as_openai(
            Completion, {**head, "object": "text_completion", "choices": [], "usage": usage(outputs, prompt_tokens)}
        )


ROUTES = [Route("/completions", create, methods=["POST"])]
