"""`fto serve`: an OpenAI-compatible fine-tuning API over the local backend, so any OpenAI client can fine-tune
and query local models.

Routes follow OpenAI's spec, one module per resource under routes/ (`/v1/files`, `/v1/uploads`,
`/v1/fine_tuning/jobs` with events, checkpoints, cancel, pause and resume, `/v1/models`, `/v1/chat/completions`),
also under Azure OpenAI's `/openai/...` paths. Bodies are parsed by pydantic models (requests.py), answers are
built as the openai SDK's typed models (responses.py), errors come in OpenAI's shape (errors.py). A bearer key is
required unless the server listens on loopback only; request bodies are size-limited (the Guard below). The
dashboard of `fto ui` is mounted read-only under `/ui`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fto.orchestrator.browser_guard import BrowserGuard
from fto.orchestrator.serve import errors
from fto.orchestrator.serve.errors import error_response
from fto.orchestrator.serve.generation import ClientGone
from fto.orchestrator.serve.routes import ROUTES, chat, completions
from fto.orchestrator.serve.state import ServeConfig, ServeState

__all__ = ["ServeConfig", "create_app"]


def create_app(config: ServeConfig) -> BrowserGuard:
    """The ASGI app: every route under OpenAI's `/v1` and Azure's `/openai` paths, behind auth and size limits."""
    routes: list[BaseRoute] = [Route(f"/v1{r.path}", r.endpoint, methods=r.methods) for r in ROUTES]
    routes += [Route(f"/openai{r.path}", r.endpoint, methods=r.methods) for r in ROUTES]
    for name, route in (("chat/completions", chat.create), ("completions", completions.create)):
        routes.append(Route(f"/openai/deployments/{{deployment}}/{name}", route, methods=["POST"]))
    from fto.orchestrator.ui.app import UiConfig, create_ui_app

    routes.append(Route("/openapi.json", _openapi))
    dashboard = create_ui_app(UiConfig(api_key=config.api_key), guarded=False)  # read-only; guarded below
    routes.append(Mount("/ui", dashboard))
    handlers = {**errors.HANDLERS, _TooLarge: _too_large_handler, _TooSlow: _too_slow_handler,
                ClientGone: _client_gone}  # fmt: skip
    from fto.orchestrator.serve.tinker.routes import ROUTES as TINKER_ROUTES
    from fto.orchestrator.serve.tinker.service import TinkerService

    routes += TINKER_ROUTES  # Tinker's training-loop API under /api/v1 (the tinker SDK's base URL is the server's)
    serve = ServeState.build(config)
    tinker = TinkerService(config.root, list(config.base_models), lambda: serve.jobs.backend.generator().engine())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(tinker.close)  # the loops' jobs end with the server (their states stay loadable)

    app = Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)
    app.state.serve = serve
    app.state.tinker = tinker
    return BrowserGuard(Guard(app, config), config.allowed_hosts, takes_files=_takes_files)


async def _openapi(request: object) -> Response:
    """The OpenAPI document of the routes above (the OpenAI subset fto serve implements, with its limits)."""
    from starlette.responses import JSONResponse

    from fto.orchestrator.serve.openapi import document

    return JSONResponse(document())


def _takes_files(path: str) -> bool:
    """The routes whose bodies are multipart forms: a file, or a part of an upload."""
    return path.rstrip("/").endswith(("/files", "/parts"))


class _TooSlow(Exception):
    """A body still incomplete at its deadline (a client trickling bytes holds a connection otherwise)."""

    def __init__(self, seconds: float):
        super().__init__(seconds)
        self.seconds = seconds


class _TooLarge(Exception):
    """A body grew past its limit while being read."""

    def __init__(self, limit: int):
        super().__init__(limit)
        self.limit = limit


class Guard:
    """Auth and body-size limits, before any route runs (so an unauthenticated upload is never stored)."""

    def __init__(self, app: Starlette, config: ServeConfig):
        self.app: ASGIApp = app
        self.starlette, self.config = app, config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        dashboard = scope["path"] == "/ui" or scope["path"].startswith("/ui/")  # it checks the key itself
        if self.config.api_key is not None and not dashboard:
            given = headers.get("authorization", "")
            token = given[7:] if given.lower().startswith("bearer ") else headers.get("api-key", "")  # Azure's
            token = token or headers.get("x-api-key", "")  # the tinker SDK's
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
        started = body_done = False
        deadline = asyncio.get_running_loop().time() + self.config.body_seconds

        async def counted_receive() -> Message:
            nonlocal seen, body_done
            if body_done:  # past the body, a route waits for the client's disconnect: no deadline on that
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), deadline - asyncio.get_running_loop().time())
            except TimeoutError:
                raise _TooSlow(self.config.body_seconds) from None
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _TooLarge(limit)
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
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
        except _TooSlow as exc:
            if not started:
                message = f"The request body did not arrive within {exc.seconds:g} seconds"
                await _send(send, error_response(408, message, "invalid_request_error", code="request_timeout"))


def _too_large(limit: int) -> Response:
    return error_response(413, f"Request body too large: the limit is {limit} bytes", "invalid_request_error",
                          code="request_too_large")  # fmt: skip


async def _send(send: Send, response: Response) -> None:
    await send({"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


async def _too_slow_handler(request: object, exc: Exception) -> Response:
    assert isinstance(exc, _TooSlow)
    return error_response(408, f"The request body did not arrive within {exc.seconds:g} seconds",
                          "invalid_request_error", code="request_timeout")  # fmt: skip


async def _client_gone(request: object, exc: Exception) -> Response:
    return Response(status_code=499)  # nobody reads it: the client left, its sequences were cancelled


async def _too_large_handler(request: object, exc: Exception) -> Response:
    assert isinstance(exc, _TooLarge)
    return _too_large(exc.limit)
