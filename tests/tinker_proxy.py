"""A checking proxy for Tinker's API on 127.0.0.1: every request and answer between the tinker SDK and a server
(here `fto serve`) is read with the SDK's own typed models and protobuf readers, apart from fto's code.

What does not validate is recorded in `violations` (the tests require none); `seen` counts the routes used.
"""

from __future__ import annotations

import collections
import threading
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from tinker import types
from tinker.proto import tinker_public_pb2
from tinker.proto.response_conv import deserialize_proto_response
from tinker.types.try_again_response import TryAgainResponse

from tests.serving import free_port

# route → (request model, answer model); a future's answer model is the type its retrieve_future yields.
ROUTES: dict[str, tuple[Any, Any]] = {
    "healthz": (None, types.HealthResponse),
    "get_server_capabilities": (None, types.GetServerCapabilitiesResponse),
    "client/config": (types.ClientConfigRequest, types.ClientConfigResponse),
    "client/dynamic_config": (None, types.ClientDynamicConfigResponse),
    "create_session": (types.CreateSessionRequest, types.CreateSessionResponse),
    "session_heartbeat": (types.SessionHeartbeatRequest, types.SessionHeartbeatResponse),
    "telemetry": (types.TelemetrySendRequest, types.TelemetryResponse),
    "get_info": (types.GetInfoRequest, types.GetInfoResponse),
    "create_sampling_session": (types.CreateSamplingSessionRequest, types.CreateSamplingSessionResponse),
}
FUTURES: dict[str, tuple[Any, Any]] = {
    "create_model": (types.CreateModelRequest, types.CreateModelResponse),
    "forward_backward": (None, types.ForwardBackwardOutput),  # a protobuf body, read below
    "optim_step": (types.OptimStepRequest, types.OptimStepResponse),
    "save_weights": (types.SaveWeightsRequest, types.SaveWeightsResponse),
    "load_weights": (types.LoadWeightsRequest, types.LoadWeightsResponse),
    "save_weights_for_sampler": (types.SaveWeightsForSamplerRequest, types.SaveWeightsForSamplerResponseInternal),
    "asample": (types.SampleRequest, types.SampleResponse),
}


class TinkerProxy:
    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self.violations: list[str] = []
        self.seen: collections.Counter[str] = collections.Counter()
        self.pending: dict[str, Any] = {}  # future id → the type its result must have
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = Starlette(routes=[Route("/{path:path}", self.forward, methods=["GET", "POST"])])
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> TinkerProxy:
        self.thread.start()
        while not self.server.started:
            threading.Event().wait(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def _check(self, what: str, check: Any) -> None:
        try:
            check()
        except Exception as exc:
            self.violations.append(f"{what}: {type(exc).__name__}: {exc}")

    async def forward(self, request: Request) -> Response:
        path = request.url.path
        route = path.removeprefix("/api/v1/")
        body = await request.body()
        self.seen[route] = self.seen[route] + 1
        known = ROUTES.get(route) or FUTURES.get(route)
        if route.startswith("samplers/"):
            known = (None, types.GetSamplerResponse)
        if known is None and route != "retrieve_future":
            self.violations.append(f"request to a route the SDK model does not describe: {path}")
        if route == "forward_backward":
            self._check("forward_backward request", lambda: tinker_public_pb2.ForwardBackwardRequest.FromString(body))
        elif known is not None and known[0] is not None:
            self._check(f"{route} request", lambda: known[0].model_validate_json(body))
        expected = None
        if route == "retrieve_future":
            parsed = types.FutureRetrieveRequest.model_validate_json(body)
            expected = self.pending.get(parsed.request_id)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with httpx.AsyncClient(timeout=120) as client:
            answer = await client.request(request.method, self.upstream + path, content=body, headers=headers)
        if answer.status_code < 400:
            self._answer(route, answer, known, expected)
        kept = {k: v for k, v in answer.headers.items() if k.lower() in ("content-type",)}
        return Response(answer.content, status_code=answer.status_code, headers=kept)

    def _answer(self, route: str, answer: httpx.Response, known: Any, expected: Any) -> None:
        if route in FUTURES:
            future = types.UntypedAPIFuture.model_validate_json(answer.content)
            self.pending[future.request_id] = FUTURES[route][1]
            if route == "asample":
                self._check("asample future", lambda: future.sample_sequence_ids or _fail("no sample_sequence_ids"))
        elif route == "retrieve_future":
            if expected is None:
                self.violations.append("retrieve_future of a request the SDK never made")
            elif "protobuf" in answer.headers.get("content-type", ""):
                self._check(
                    f"{expected.__name__} protobuf", lambda: deserialize_proto_response(answer.content, expected)
                )
            else:
                payload = answer.json()
                if payload.get("type") == "try_again":
                    self._check("try_again", lambda: TryAgainResponse.model_validate(payload))
                elif "error" in payload:
                    self._check("failed request", lambda: types.RequestFailedResponse.model_validate(payload))
                else:
                    self._check(f"{expected.__name__}", lambda: expected.model_validate(payload))
        elif known is not None:
            self._check(f"{route} answer", lambda: known[1].model_validate_json(answer.content))


def _fail(message: str) -> None:
    raise AssertionError(message)
