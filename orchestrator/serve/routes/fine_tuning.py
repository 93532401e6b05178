"""/fine_tuning/jobs: create, list and retrieve jobs; their events and checkpoints; cancel, pause, resume."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from openai.types.fine_tuning import FineTuningJobEvent
from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fto.orchestrator.serve.jobs import ServeJobs
from fto.orchestrator.serve.requests import CreateFineTuningJob, parse_body
from fto.orchestrator.serve.responses import PausableFineTuningJob, page, respond, respond_list
from fto.orchestrator.serve.state import state


async def create(request: Request) -> Response:
    """POST /fine_tuning/jobs."""
    body = parse_body(CreateFineTuningJob, await request.body())
    return respond(PausableFineTuningJob, await run_in_threadpool(state(request).jobs.create, body))


async def list_jobs(request: Request) -> Response:
    """GET /fine_tuning/jobs, newest first; `metadata[KEY]=VALUE` filters."""
    wanted = {
        key[len("metadata[") : -1]: value
        for key, value in request.query_params.items()
        if key.startswith("metadata[") and key.endswith("]")
    }
    found = await run_in_threadpool(state(request).jobs.views, wanted)
    data, more = page(found, request, 20)
    return respond_list(PausableFineTuningJob, data, more)


def _job_action(action: Callable[[ServeJobs, str], dict[str, Any]]) -> Callable[[Request], Awaitable[Response]]:
    """A route that applies one of ServeJobs' methods to the job in the path and answers the job."""

    async def handler(request: Request) -> Response:
        return respond(
            PausableFineTuningJob, await run_in_threadpool(action, state(request).jobs, request.path_params["job_id"])
        )

    handler.__doc__ = action.__doc__
    return handler


async def events(request: Request) -> Response:
    """GET /fine_tuning/jobs/{job_id}/events, newest first."""
    found = await run_in_threadpool(state(request).jobs.events, request.path_params["job_id"])
    data, more = page(found, request, 20)
    return respond_list(FineTuningJobEvent, data, more)


async def checkpoints(request: Request) -> Response:
    """GET /fine_tuning/jobs/{job_id}/checkpoints, newest first."""
    found = await run_in_threadpool(state(request).jobs.checkpoints, request.path_params["job_id"])
    data, more = page(found, request, 10)
    return respond_list(FineTuningJobCheckpoint, data, more, with_ids=True)


ROUTES = [
    Route("/fine_tuning/jobs", create, methods=["POST"]),
    Route("/fine_tuning/jobs", list_jobs, methods=["GET"]),
    Route("/fine_tuning/jobs/{job_id}", _job_action(ServeJobs.view), methods=["GET"]),
    Route("/fine_tuning/jobs/{job_id}/cancel", _job_action(ServeJobs.cancel), methods=["POST"]),
    Route("/fine_tuning/jobs/{job_id}/pause", _job_action(ServeJobs.pause), methods=["POST"]),
    Route("/fine_tuning/jobs/{job_id}/resume", _job_action(ServeJobs.resume), methods=["POST"]),
    Route("/fine_tuning/jobs/{job_id}/events", events, methods=["GET"]),
    Route("/fine_tuning/jobs/{job_id}/checkpoints", checkpoints, methods=["GET"]),
]
