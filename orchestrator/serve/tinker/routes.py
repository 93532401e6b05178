"""Tinker's REST API (`/api/v1/...`), as the unmodified tinker SDK calls it, over the local trainer.

Bodies are read with the SDK's own typed models (tinker.types), so a request the SDK would not send is a 400 naming
the field; answers are built from the same models. Work that takes time answers with a future id at once, and
`retrieve_future` hands out its result (JSON, or protobuf for forward_backward and samples), long-polling a while.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fto.loop import Adam, SamplingParams
from fto.orchestrator.serve.tinker.service import Missing, Result, TinkerService, UserError

PROTO = "application/x-protobuf"
LONG_POLL_SECONDS = 20.0  # retrieve_future waits this long for a result before answering try_again


def service(request: Request) -> TinkerService:
    """The app's Tinker state."""
    found: TinkerService = request.app.state.tinker
    return found


def _types() -> Any:
    try:
        from tinker import types
    except ImportError:
        raise _Unavailable() from None
    return types


class _Unavailable(Exception):
    pass


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message, "error": {"message": message}}, status_code=status)


def handler(endpoint: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """Mistakes as 4xx answers the SDK raises as typed errors (BadRequestError, NotFoundError)."""
    import functools

    import pydantic

    @functools.wraps(endpoint)
    async def wrapped(request: Request) -> Response:
        try:
            return await endpoint(request)
        except _Unavailable:
            return _error(501, "fto serve's Tinker API needs the tinker SDK: pip install 'fto[loop]'")
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            return _error(400, f"invalid request: {where}: {first['msg']}")
        except UserError as exc:
            return _error(400, str(exc))
        except Missing as exc:
            return _error(404, str(exc))
        except ValueError as exc:  # a body that is not JSON, a protobuf that does not decode
            return _error(400, f"invalid request body: {exc}")

    return wrapped


async def _body(request: Request, model: str) -> Any:
    """The JSON body read as the SDK's model `model` (strict: an unknown field is an error)."""
    raw = await request.json()
    if not isinstance(raw, dict):
        raise UserError("the request body must be a JSON object")
    return getattr(_types(), model).model_validate(raw)


def _json(model: Any) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json", exclude_none=True))


def _future(request_id: str, model_id: str | None = None, sequences: int = 0) -> JSONResponse:
    ids = [f"{request_id}-{k}" for k in range(sequences)] or None  # a sample's sequences, named in order
    return _json(_types().UntypedAPIFuture(request_id=request_id, model_id=model_id, sample_sequence_ids=ids))


# service ---------------------------------------------------------------------------------------------------


@handler
async def healthz(request: Request) -> Response:
    """`GET /api/v1/healthz`."""
    return _json(_types().HealthResponse(status="ok"))


@handler
async def capabilities(request: Request) -> Response:
    """`GET /api/v1/get_server_capabilities`: the offered base models."""
    types = _types()
    models = [types.SupportedModel(model_name=m, trainable=True, sampleable=True)
              for m in service(request).base_models]  # fmt: skip
    return _json(types.GetServerCapabilitiesResponse(supported_models=models))


@handler
async def client_config(request: Request) -> Response:
    # httpx rather than the SDK's Rust transport; bodies uncompressed (loopback); losses run where the SDK is.
    """`POST /api/v1/client/config`: the SDK's feature flags for this server."""
    return _json(_types().ClientConfigResponse(use_pyqwest_transport=False, proto_compress_fwdbwd=False))


@handler
async def dynamic_config(request: Request) -> Response:
    """`POST /api/v1/client/dynamic_config`: the defaults."""
    return _json(_types().ClientDynamicConfigResponse())


@handler
async def create_session(request: Request) -> Response:
    """`POST /api/v1/create_session`."""
    body = await _body(request, "CreateSessionRequest")
    session_id = service(request).create_session(body.tags, body.user_metadata)
    return _json(_types().CreateSessionResponse(session_id=session_id))


@handler
async def heartbeat(request: Request) -> Response:
    """`POST /api/v1/session_heartbeat`: a 404 for a session this server does not know."""
    body = await _body(request, "SessionHeartbeatRequest")
    service(request).heartbeat(body.session_id)
    return _json(_types().SessionHeartbeatResponse())


@handler
async def telemetry(request: Request) -> Response:
    """`POST /api/v1/telemetry`: accepted, not kept."""
    return JSONResponse({"status": "accepted"})  # nothing is kept


# training --------------------------------------------------------------------------------------------------


@handler
async def create_model(request: Request) -> Response:
    """`POST /api/v1/create_model`: checked now, built in a future (a LoRA model, and its fto job)."""
    types, tinker = _types(), service(request)
    body = await _body(request, "CreateModelRequest")
    lora = body.lora_config or types.LoraConfig(rank=16)
    if body.optimizer_config.type != "adamw":
        raise UserError(f"optimizer {body.optimizer_config.type!r} is not offered here; offered: adamw")
    tinker.check_model(body.session_id, body.base_model, lora.rank)
    model_id = f"{body.session_id}:train:{body.model_seq_id}"
    parts = (lora.train_attn, lora.train_mlp, lora.train_unembed)

    def work() -> Result:
        tinker.build(model_id, body.base_model, lora.rank, lora.seed or 0, parts)
        return Result(json=types.CreateModelResponse(model_id=model_id).model_dump(mode="json"))

    return _future(tinker.submit(work), model_id)


@handler
async def get_info(request: Request) -> Response:
    """`POST /api/v1/get_info`: the model, and where its tokenizer is."""
    types, tinker = _types(), service(request)
    body = await _body(request, "GetInfoRequest")
    model = tinker.model(body.model_id)
    data = types.ModelData(arch="llama", model_name=model.base_model, tokenizer_id=str(model.loop.base))
    return _json(types.GetInfoResponse(model_id=model.model_id, model_data=data, is_lora=True,
                                       lora_rank=model.rank, model_name=model.base_model))  # fmt: skip


@handler
async def forward_backward(request: Request) -> Response:
    """`POST /api/v1/forward_backward`: a protobuf body checked now (shapes, tokens, loss), run in order."""
    from fto.backends.local.loop import LoopError
    from fto.orchestrator.serve.tinker import wire

    tinker = service(request)
    _types()
    if PROTO not in request.headers.get("content-type", ""):
        raise UserError(f"forward_backward takes a protobuf body ({PROTO})")
    body = await request.body()
    if request.headers.get("content-encoding") == "zstd":
        import zstandard

        body = zstandard.ZstdDecompressor().decompress(body, max_output_size=64 * 1024 * 1024)
    parsed = wire.forward_backward_request(body)
    model = tinker.model(parsed.model_id)
    try:  # shapes, token ids and the loss are checked now: a 400, and nothing runs
        await run_in_threadpool(model.loop.check, parsed.data, parsed.loss_fn)
    except LoopError as exc:
        tinker.pass_turn(model, parsed.seq_id)  # the requests after it need not wait for it
        raise UserError(str(exc)) from None

    def work() -> Result:
        out = tinker.forward_backward(model, parsed.data, parsed.loss_fn, parsed.config, parsed.forward_only)
        return Result(proto=wire.forward_backward_output(out))

    return _future(tinker.submit(work, model, parsed.seq_id), model.model_id)


@handler
async def optim_step(request: Request) -> Response:
    """`POST /api/v1/optim_step`: one Adam step, in order."""
    types, tinker = _types(), service(request)
    body = await _body(request, "OptimStepRequest")
    model = tinker.model(body.model_id)
    params = body.optim_params
    if not isinstance(params, types.AdamParams):
        raise UserError(f"optimizer parameters of type {getattr(params, 'type', '?')!r} are not offered; use Adam")
    adam = Adam(params.learning_rate, params.beta1, params.beta2, params.eps, params.weight_decay,
                params.grad_clip_norm)  # fmt: skip

    def work() -> Result:
        stats = tinker.optim_step(model, adam)
        return Result(json=types.OptimStepResponse(metrics=stats).model_dump(mode="json"))

    return _future(tinker.submit(work, model, body.seq_id), model.model_id)


@handler
async def save_weights(request: Request) -> Response:
    """`POST /api/v1/save_weights`: the state under a plain name (tinker://JOB/weights/NAME)."""
    types, tinker = _types(), service(request)
    body = await _body(request, "SaveWeightsRequest")
    model = tinker.model(body.model_id)
    _check_name(tinker, model, body.path, body.seq_id)

    def work() -> Result:
        path = tinker.save_state(model, body.path)
        return Result(json=types.SaveWeightsResponse(path=path, type="save_weights").model_dump(mode="json"))

    return _future(tinker.submit(work, model, body.seq_id), model.model_id)


@handler
async def load_weights(request: Request) -> Response:
    """`POST /api/v1/load_weights`: into a model, or a new model from a saved state (its job reopened)."""
    types, tinker = _types(), service(request)
    body = await _body(request, "LoadWeightsRequest")
    if body.model_id is not None:  # into an existing model (TrainingClient.load_state)
        model, seq_id = tinker.model(body.model_id), body.seq_id
    elif body.session_id is not None and body.model_seq_id is not None:  # a new model from a saved state
        model, seq_id = None, None
        tinker.heartbeat(body.session_id)
    else:
        raise UserError("load_weights needs model_id, or session_id with model_seq_id")
    try:
        job_id, folder = tinker.resolve(body.path, "weights")
        config = _saved_config(tinker, job_id)
        if body.base_model is not None:
            tinker.check_base(body.base_model)
    except (UserError, Missing):
        if model is not None and seq_id:
            tinker.pass_turn(model, seq_id)  # the requests after it need not wait for it
        raise

    def work() -> Result:
        target = model
        if target is None:
            model_id = f"{body.session_id}:train:{body.model_seq_id}"
            base = body.base_model or config["base_model"]
            target = tinker.build(model_id, base, config["rank"], config["seed"], tuple(config["parts"]), job_id)
        target.loop.load_state(str(folder), optimizer=body.optimizer)
        target.folder.event(f"loaded state {body.path} (step {target.loop.steps})")
        response = types.LoadWeightsResponse(path=body.path, model_id=target.model_id, type="load_weights")
        return Result(json=response.model_dump(mode="json"))

    model_id = model.model_id if model else f"{body.session_id}:train:{body.model_seq_id}"
    return _future(tinker.submit(work, model, seq_id), model_id)


def _check_name(tinker: TinkerService, model: Any, name: str | None, seq_id: int | None) -> None:
    """A 400 for a state name that is not a plain name (its place in the model's order given up)."""
    from fto.orchestrator.serve.tinker.service import valid_name

    try:
        valid_name(name)
    except UserError:
        if seq_id:
            tinker.pass_turn(model, seq_id)
        raise


def _saved_config(tinker: TinkerService, job_id: str) -> dict[str, Any]:
    import json

    from fto.orchestrator.paths import backend_dir

    try:
        saved: dict[str, Any] = json.loads((backend_dir("local") / "jobs" / job_id / "config.json").read_text())
        return saved["loop"]
    except (FileNotFoundError, KeyError, ValueError):
        raise Missing(f"job {job_id} is not a training loop of this server") from None


@handler
async def save_for_sampler(request: Request) -> Response:
    """`POST /api/v1/save_weights_for_sampler`: the adapter for sampling (and a sampling session)."""
    types, tinker = _types(), service(request)
    body = await _body(request, "SaveWeightsForSamplerRequest")
    model = tinker.model(body.model_id)
    _check_name(tinker, model, body.path, body.seq_id)

    def work() -> Result:
        path, folder = tinker.save_for_sampler(model, body.path)
        sampler = tinker.new_sampler(folder) if body.sampling_session_seq_id is not None else None
        response = types.SaveWeightsForSamplerResponseInternal(path=path, sampling_session_id=sampler)
        return Result(json=response.model_dump(mode="json"))

    return _future(tinker.submit(work, model, body.seq_id), model.model_id)


# sampling --------------------------------------------------------------------------------------------------


@handler
async def create_sampling_session(request: Request) -> Response:
    """`POST /api/v1/create_sampling_session`: from a saved sampler or an offered base model."""
    types, tinker = _types(), service(request)
    body = await _body(request, "CreateSamplingSessionRequest")
    tinker.heartbeat(body.session_id)
    folder = _sampler_folder(tinker, body.model_path, body.base_model)
    return _json(types.CreateSamplingSessionResponse(sampling_session_id=tinker.new_sampler(folder)))


def _sampler_folder(tinker: TinkerService, model_path: str | None, base_model: str | None) -> str:
    if model_path:
        return str(tinker.resolve(model_path, "sampler_weights")[1])
    if base_model:
        return tinker.base_folder(base_model)
    raise UserError("a sampler needs model_path or base_model")


@handler
async def get_sampler(request: Request) -> Response:
    """`GET /api/v1/samplers/ID`."""
    types, tinker = _types(), service(request)
    sampler_id = request.path_params["sampler_id"]
    folder = tinker.sampler(sampler_id)
    return _json(types.GetSamplerResponse(sampler_id=sampler_id, base_model=folder, model_path=folder))


@handler
async def asample(request: Request) -> Response:
    """`POST /api/v1/asample`: samples through the engine, as a future (protobuf)."""
    from fto.orchestrator.serve.tinker import wire

    tinker = service(request)
    body = await _body(request, "SampleRequest")
    if body.sampling_session_id:
        folder = tinker.sampler(body.sampling_session_id)
    else:
        folder = _sampler_folder(tinker, body.model_path, body.base_model)
    if body.prompt_logprobs or body.topk_prompt_logprobs or body.topk_sample_logprobs or body.prompt_alt_tokens_k:
        raise UserError("prompt log-probabilities and top-k log-probabilities are not offered here")
    prompt = body.prompt.to_ints()
    sp = body.sampling_params
    stop = sp.stop if isinstance(sp.stop, list | tuple) else ([sp.stop] if sp.stop else [])
    if any(isinstance(s, int) for s in stop):
        raise UserError("stop tokens are not offered here; give stop strings")
    params = SamplingParams(max_tokens=sp.max_tokens or 64, temperature=sp.temperature, top_p=sp.top_p,
                            seed=sp.seed, stop=tuple(str(s) for s in stop))  # fmt: skip

    def work() -> Result:
        return Result(proto=wire.sample_response(tinker.sample(folder, prompt, body.num_samples, params)))

    return _future(tinker.submit(work), sequences=body.num_samples)


# futures ---------------------------------------------------------------------------------------------------


@handler
async def retrieve_future(request: Request) -> Response:
    """`POST /api/v1/retrieve_future`: the result, long-polled; try_again while it runs."""
    body = await _body(request, "FutureRetrieveRequest")
    future = service(request).future(body.request_id)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), LONG_POLL_SECONDS)
    if not future.done():
        return JSONResponse({"type": "try_again", "request_id": body.request_id, "queue_state": "active"})
    result = future.result()
    if result.error is not None:
        return JSONResponse({"error": result.error, "category": result.category})
    if result.proto is not None:
        return Response(result.proto, media_type=PROTO)
    return JSONResponse(result.json)


ROUTES = [
    Route("/api/v1/healthz", healthz, methods=["GET"]),
    Route("/api/v1/get_server_capabilities", capabilities, methods=["GET"]),
    Route("/api/v1/client/config", client_config, methods=["POST"]),
    Route("/api/v1/client/dynamic_config", dynamic_config, methods=["POST"]),
    Route("/api/v1/create_session", create_session, methods=["POST"]),
    Route("/api/v1/session_heartbeat", heartbeat, methods=["POST"]),
    Route("/api/v1/telemetry", telemetry, methods=["POST"]),
    Route("/api/v1/create_model", create_model, methods=["POST"]),
    Route("/api/v1/get_info", get_info, methods=["POST"]),
    Route("/api/v1/forward_backward", forward_backward, methods=["POST"]),
    Route("/api/v1/optim_step", optim_step, methods=["POST"]),
    Route("/api/v1/save_weights", save_weights, methods=["POST"]),
    Route("/api/v1/load_weights", load_weights, methods=["POST"]),
    Route("/api/v1/save_weights_for_sampler", save_for_sampler, methods=["POST"]),
    Route("/api/v1/create_sampling_session", create_sampling_session, methods=["POST"]),
    Route("/api/v1/samplers/{sampler_id}", get_sampler, methods=["GET"]),
    Route("/api/v1/asample", asample, methods=["POST"]),
    Route("/api/v1/retrieve_future", retrieve_future, methods=["POST"]),
]
