"""`fto serve`: an OpenAI-compatible fine-tuning API over the local backend, so any OpenAI client can fine-tune
and query local models.

Routes follow OpenAI's spec (`/v1/files`, `/v1/uploads`, `/v1/fine_tuning/jobs` with events, checkpoints, cancel,
pause and resume, `/v1/models`, `/v1/chat/completions`); errors come in OpenAI's error shape. A bearer key is
required unless the server listens on loopback only; request bodies are size-limited.
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from fto.backends.base import GenerationParams
from fto.orchestrator.data.formats.base import RecordError
from fto.orchestrator.data.formats.chat import parse_messages
from fto.orchestrator.serve.batching import Batcher
from fto.orchestrator.serve.files import FileStore, Invalid, NotFound, public_upload
from fto.orchestrator.serve.jobs import ORGANIZATION, ServeJobs

MB = 1024 * 1024


@dataclass
class ServeConfig:
    root: Path
    base_models: Sequence[str] = ("embedded:tiny-llama",)
    api_key: str | None = None  # None: no auth (allowed on loopback only; the CLI enforces it)
    max_file_bytes: int = 512 * MB  # one file or upload part, as OpenAI's Files API
    max_json_bytes: int = 16 * MB
    local_options: dict[str, Any] = field(default_factory=dict)


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None):  # fmt: skip
        super().__init__(message)
        self.status, self.kind, self.param, self.code = status, kind, param, code


def error_response(status: int, message: str, kind: str, param: str | None = None, code: str | None = None) -> Response:
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status)


def create_app(config: ServeConfig) -> Starlette:
    files = FileStore(config.root)
    jobs = ServeJobs(config.root, files, config.base_models, config.local_options)
    batcher = Batcher(jobs.backend)  # concurrent requests for one model are generated together

    async def json_body(request: Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.body() or b"{}")
        except json.JSONDecodeError as exc:
            raise ApiError(400, f"We could not parse the JSON body of your request: {exc.msg}") from None
        if not isinstance(body, dict):
            raise ApiError(400, "The request body must be a JSON object")
        return body

    def page(items: list[dict[str, Any]], request: Request, default_limit: int) -> tuple[list[dict[str, Any]], bool]:
        after = request.query_params.get("after")
        try:
            limit = int(request.query_params.get("limit", default_limit))
        except ValueError:
            raise ApiError(400, "limit must be an integer", param="limit") from None
        if not 1 <= limit <= 10000:
            raise ApiError(400, "limit must be between 1 and 10000", param="limit")
        if after:
            ids = [item["id"] for item in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        return items[:limit], len(items) > limit

    # files --------------------------------------------------------------------------------------------

    async def create_file(request: Request) -> Response:
        form = await request.form(max_files=1, max_fields=4)
        upload, purpose = form.get("file"), form.get("purpose")
        if not isinstance(upload, UploadFile):
            raise ApiError(400, "a file is required (multipart field 'file')", param="file")
        if purpose != "fine-tune":
            raise ApiError(400, f"purpose {purpose!r} is not supported here; use 'fine-tune'", param="purpose")
        return JSONResponse(await run_in_threadpool(files.create, upload.file, upload.filename or "", purpose))

    async def list_files(request: Request) -> Response:
        found = files.list(request.query_params.get("purpose"))
        if request.query_params.get("order") == "asc":
            found.reverse()
        data, more = page(found, request, 10000)
        first, last = (data[0]["id"], data[-1]["id"]) if data else ("", "")
        return JSONResponse({"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": more})

    async def get_file(request: Request) -> Response:
        return JSONResponse(files.get(request.path_params["file_id"]))

    async def file_content(request: Request) -> Response:
        path = files.path(request.path_params["file_id"])
        return Response(await run_in_threadpool(path.read_bytes), media_type="application/jsonl")

    async def delete_file(request: Request) -> Response:
        file_id = request.path_params["file_id"]
        files.delete(file_id)
        return JSONResponse({"id": file_id, "object": "file", "deleted": True})

    async def create_upload(request: Request) -> Response:
        body = await json_body(request)
        size, purpose = body.get("bytes"), body.get("purpose")
        if purpose != "fine-tune":
            raise ApiError(400, f"purpose {purpose!r} is not supported here; use 'fine-tune'", param="purpose")
        if not isinstance(size, int) or size <= 0:
            raise ApiError(400, "bytes must be a positive integer", param="bytes")
        meta = files.create_upload(str(body.get("filename") or ""), purpose, size, str(body.get("mime_type") or ""))
        return JSONResponse(public_upload(meta))

    async def add_part(request: Request) -> Response:
        form = await request.form(max_files=1, max_fields=1)
        data = form.get("data")
        if not isinstance(data, UploadFile):
            raise ApiError(400, "a part is required (multipart field 'data')", param="data")
        part = await run_in_threadpool(files.add_part, request.path_params["upload_id"], data.file)
        return JSONResponse(part)

    async def complete_upload(request: Request) -> Response:
        body = await json_body(request)
        part_ids = body.get("part_ids")
        if not isinstance(part_ids, list) or not all(isinstance(p, str) for p in part_ids):
            raise ApiError(400, "part_ids must be a list of part ids", param="part_ids")
        meta = await run_in_threadpool(files.complete_upload, request.path_params["upload_id"], part_ids)
        return JSONResponse(public_upload(meta))

    async def cancel_upload(request: Request) -> Response:
        return JSONResponse(public_upload(files.cancel_upload(request.path_params["upload_id"])))

    # fine-tuning jobs ---------------------------------------------------------------------------------

    async def create_job(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(jobs.create, await json_body(request)))

    async def list_jobs(request: Request) -> Response:
        wanted = {
            key[len("metadata[") : -1]: value
            for key, value in request.query_params.items()
            if key.startswith("metadata[") and key.endswith("]")
        }

        def matching() -> list[dict[str, Any]]:
            found = []
            for job_id in jobs.ids():
                record = jobs.record(job_id)
                if all((record["metadata"] or {}).get(k) == v for k, v in wanted.items()):
                    found.append(jobs.view(job_id))
            return found

        data, more = page(await run_in_threadpool(matching), request, 20)
        return JSONResponse({"object": "list", "data": data, "has_more": more})

    def job_route(action: Callable[[str], dict[str, Any]]) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            return JSONResponse(await run_in_threadpool(action, request.path_params["job_id"]))

        return handler

    async def job_events(request: Request) -> Response:
        found = await run_in_threadpool(jobs.events, request.path_params["job_id"])
        data, more = page(found, request, 20)
        return JSONResponse({"object": "list", "data": data, "has_more": more})

    async def job_checkpoints(request: Request) -> Response:
        found = await run_in_threadpool(jobs.checkpoints, request.path_params["job_id"])
        data, more = page(found, request, 10)
        first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
        return JSONResponse({"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": more})

    # models and inference -----------------------------------------------------------------------------

    def model_object(model_id: str, created: int) -> dict[str, Any]:
        owner = ORGANIZATION if model_id.startswith("ft:") else "fto-serve"
        return {"id": model_id, "object": "model", "created": created, "owned_by": owner}

    async def list_models(request: Request) -> Response:
        found = await run_in_threadpool(jobs.models)
        return JSONResponse({"object": "list", "data": [model_object(m, c) for m, (_, c) in found.items()]})

    async def get_model(request: Request) -> Response:
        model_id = request.path_params["model"]
        found = await run_in_threadpool(jobs.models)
        if model_id not in found:
            raise ApiError(404, f"The model '{model_id}' does not exist", param="model", code="model_not_found")
        return JSONResponse(model_object(model_id, found[model_id][1]))

    async def chat_completions(request: Request) -> Response:
        body = await json_body(request)
        if body.get("stream"):
            raise ApiError(400, "streaming is not supported by fto serve; send stream: false", param="stream")
        if body.get("n", 1) != 1:
            raise ApiError(400, "n must be 1", param="n")
        raw = body.get("messages")
        if not isinstance(raw, list) or not raw:
            raise ApiError(400, "messages must be a non-empty list", param="messages")
        try:
            messages = parse_messages(raw, lambda *_: None)
        except RecordError as exc:
            raise ApiError(400, exc.message, param=exc.field or "messages") from None
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or 256
        temperature = body.get("temperature", 1.0)
        if not isinstance(max_tokens, int) or not 1 <= max_tokens <= 4096:
            raise ApiError(400, "max_completion_tokens must be an integer from 1 to 4096", param="max_tokens")
        if not isinstance(temperature, int | float) or not 0 <= temperature <= 2:
            raise ApiError(400, "temperature must be between 0 and 2", param="temperature")
        seed = body.get("seed") or 0
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ApiError(400, "seed must be an integer", param="seed")
        params = GenerationParams(max_new_tokens=max_tokens, temperature=temperature, seed=seed)
        model_id = request.path_params.get("deployment") or body.get("model")  # Azure names it in the path
        found = await run_in_threadpool(jobs.models)
        if not isinstance(model_id, str) or model_id not in found:
            raise ApiError(404, f"The model '{model_id}' does not exist", param="model", code="model_not_found")
        path = found[model_id][0]
        if path is None:
            raise ApiError(
                404, f"The model '{model_id}' is built by its first fine-tuning job; none has run yet", param="model"
            )

        reply = await batcher.complete(path, messages, params)
        prompt_tokens, completion_tokens = reply.input_tokens or 0, reply.output_tokens or 0
        return JSONResponse(
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
            }
        )

    api = [
        Route("/files", create_file, methods=["POST"]),
        Route("/files", list_files, methods=["GET"]),
        Route("/files/{file_id}", get_file, methods=["GET"]),
        Route("/files/{file_id}", delete_file, methods=["DELETE"]),
        Route("/files/{file_id}/content", file_content, methods=["GET"]),
        Route("/uploads", create_upload, methods=["POST"]),
        Route("/uploads/{upload_id}/parts", add_part, methods=["POST"]),
        Route("/uploads/{upload_id}/complete", complete_upload, methods=["POST"]),
        Route("/uploads/{upload_id}/cancel", cancel_upload, methods=["POST"]),
        Route("/fine_tuning/jobs", create_job, methods=["POST"]),
        Route("/fine_tuning/jobs", list_jobs, methods=["GET"]),
        Route("/fine_tuning/jobs/{job_id}", job_route(jobs.view), methods=["GET"]),
        Route("/fine_tuning/jobs/{job_id}/cancel", job_route(jobs.cancel), methods=["POST"]),
        Route("/fine_tuning/jobs/{job_id}/pause", job_route(jobs.pause), methods=["POST"]),
        Route("/fine_tuning/jobs/{job_id}/resume", job_route(jobs.resume), methods=["POST"]),
        Route("/fine_tuning/jobs/{job_id}/events", job_events, methods=["GET"]),
        Route("/fine_tuning/jobs/{job_id}/checkpoints", job_checkpoints, methods=["GET"]),
        Route("/models", list_models, methods=["GET"]),
        Route("/models/{model:path}", get_model, methods=["GET"]),
        Route("/chat/completions", chat_completions, methods=["POST"]),
    ]
    # OpenAI's paths under /v1, and Azure OpenAI's (`/openai/...`, chat by deployment) for AzureOpenAI clients.
    routes = [Route(f"/v1{r.path}", r.endpoint, methods=r.methods) for r in api]
    routes += [Route(f"/openai{r.path}", r.endpoint, methods=r.methods) for r in api]
    routes.append(Route("/openai/deployments/{deployment}/chat/completions", chat_completions, methods=["POST"]))

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, str(exc), exc.kind, exc.param, exc.code)

    async def not_found(request: Request, exc: Exception) -> Response:
        return error_response(404, str(exc), "invalid_request_error")

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Invalid)
        return error_response(400, str(exc), "invalid_request_error", exc.param)

    async def http_error(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        detail = getattr(exc, "detail", "error")
        if status == 404:
            detail = f"Invalid URL ({request.method} {request.url.path})"
        return error_response(status, str(detail), "invalid_request_error")

    async def server_error(request: Request, exc: Exception) -> Response:
        return error_response(500, f"The server had an error processing your request ({type(exc).__name__})",
                              "server_error")  # fmt: skip

    async def too_large(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, _TooLarge)
        return _too_large(exc.limit)

    app = Starlette(
        routes=routes,
        exception_handlers={
            ApiError: api_error,
            NotFound: not_found,
            Invalid: invalid,
            HTTPException: http_error,
            _TooLarge: too_large,
            Exception: server_error,
        },
    )
    return Guard(app, config)  # type: ignore[return-value]


class _TooLarge(Exception):
    def __init__(self, limit: int):
        super().__init__(limit)
        self.limit = limit


class Guard:
    """Auth and body-size limits, before any route runs (so an unauthenticated upload is never stored)."""

    def __init__(self, app: Starlette, config: ServeConfig):
        self.app, self.config = app, config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if self.config.api_key is not None:
            given = headers.get("authorization", "")
            token = given[7:] if given.lower().startswith("bearer ") else headers.get("api-key", "")  # Azure's
            if not hmac.compare_digest(token.encode(), self.config.api_key.encode()):
                await _send(send, error_response(401, "Incorrect API key provided.", "invalid_request_error",
                                                 code="invalid_api_key"))  # fmt: skip
                return
        multipart = headers.get("content-type", "").startswith("multipart/")
        limit = self.config.max_file_bytes + 64 * 1024 if multipart else self.config.max_json_bytes  # form overhead
        declared = headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            await _send(send, _too_large(limit))
            return
        seen = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _TooLarge(limit)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except _TooLarge:
            if not started:
                await _send(send, _too_large(limit))


def _too_large(limit: int) -> Response:
    return error_response(413, f"Request body too large: the limit is {limit} bytes", "invalid_request_error",
                          code="request_too_large")  # fmt: skip


async def _send(send: Send, response: Response) -> None:
    await send({"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})
