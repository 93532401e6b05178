"""/models: the base models clients may fine-tune and the fine-tuned ones."""

from __future__ import annotations

from typing import Any

from openai.types import Model
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fto.orchestrator.serve.errors import ApiError
from fto.orchestrator.serve.jobs import ORGANIZATION
from fto.orchestrator.serve.responses import respond, respond_list
from fto.orchestrator.serve.state import state


def _model(model_id: str, created: int) -> dict[str, Any]:
    owner = ORGANIZATION if model_id.startswith("ft:") else "fto-serve"
    return {"id": model_id, "object": "model", "created": created, "owned_by": owner}


async def list_models(request: Request) -> Response:
    """GET /models."""
    found = await run_in_threadpool(state(request).jobs.models)
    return respond_list(Model, [_model(name, created) for name, (_, created) in found.items()], False)


async def retrieve(request: Request) -> Response:
    """GET /models/{model}."""
    model_id = request.path_params["model"]
    found = await run_in_threadpool(state(request).jobs.models)
    if model_id not in found:
        raise ApiError(404, f"The model '{model_id}' does not exist", param="model", code="model_not_found")
    return respond(Model, _model(model_id, found[model_id][1]))


ROUTES = [
    Route("/models", list_models, methods=["GET"]),
    Route("/models/{model:path}", retrieve, methods=["GET"]),
]
