"""`fto ui`'s web app: the pages and their JSON, over the one Store, behind a key off loopback.

Every store read runs on one worker thread (a connection is not shared between threads at once); pages that
change follow `/api/stream` and fetch only the fragment or chart data that changed.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from fto.orchestrator.api import actions
from fto.orchestrator.browser_guard import LOOPBACK_NAMES, BrowserGuard
from fto.orchestrator.errors import FtoError
from fto.orchestrator.eval.examples import SHOWS
from fto.orchestrator.store import Store
from fto.orchestrator.templates import render
from fto.orchestrator.ui import views
from fto.orchestrator.ui.live import Changes
from fto.orchestrator.ui.series import XS, loss_series, per_series

T = TypeVar("T")
STATIC = Path(__file__).parent / "static"
COOKIE = "fto_ui_key"
SERIES_KEPT = 20_000  # finished jobs' drawn curves kept in memory
SHOW_LABELS = {"all": "all", "better": "fine-tuned better than base", "worse": "fine-tuned worse than base",
               "disagree": "models disagree"}  # fmt: skip


@dataclass
class UiConfig:
    """How the dashboard runs: its store, its key (None on loopback) and whether its buttons act."""

    store_location: str | None = None
    api_key: str | None = None
    allow_actions: bool = False
    allowed_hosts: tuple[str, ...] = LOOPBACK_NAMES  # Host names answered (DNS rebinding defence)


@dataclass
class _State:
    config: UiConfig
    store: Store
    limiter: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(1))
    evaluations: dict[str, str] = field(default_factory=dict)  # experiment → "running", "done" or the error
    changes: Changes | None = None
    finished_series: dict[tuple[str, str, int], list[dict[str, Any]]] = field(default_factory=dict)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a store read on the store's one worker thread."""
        return await anyio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    def backends(self) -> list[str]:
        """Installed backends, the data page's choice of rules."""
        from fto.backends import registry

        return sorted(registry.available())

    def live(self) -> Changes:
        if self.changes is None:
            self.changes = Changes(lambda: self.read(self.store.changed))
        return self.changes


def _state(request: Request) -> _State:
    found: _State = request.app.state.ui
    return found


def _page(request: Request, template: str, **context: Any) -> HTMLResponse:
    ui = _state(request)
    root = request.scope.get("root_path", "")
    html = render(template, root=root, quote=quote, allow_actions=ui.config.allow_actions, **context)
    return HTMLResponse(html)


async def experiments_page(request: Request) -> Response:
    """`/`: every experiment, filtered by `q` and sorted by `sort`."""
    ui = _state(request)
    query, sort = request.query_params.get("q", ""), request.query_params.get("sort", "started")
    rows = await ui.read(views.experiments_overview, ui.store, query, sort)
    return _page(request, "ui/experiments.html", rows=rows, q=query, sort=sort, sorts=views.SORTS)


async def experiment_page(request: Request) -> Response:
    """`/experiments/ID`: its jobs, loss chart, sweep plot and data check."""
    ui = _state(request)
    experiment = await ui.read(ui.store.experiment, request.path_params["id"])
    rows = await ui.read(views.job_rows, ui.store, experiment)
    check = await ui.read(views.check_findings, ui.store, experiment)
    planned = await ui.read(views.plan_vs_actual, ui.store, experiment)
    evaluating = ui.evaluations.get(experiment.id)
    return _page(request, "ui/experiment.html", experiment=experiment, rows=rows, check=check, xs=XS,
                 evaluating=evaluating, planned=planned)  # fmt: skip


async def job_rows_fragment(request: Request) -> Response:
    """The experiment page's job rows alone, which live updates swap in."""
    ui = _state(request)
    experiment = await ui.read(ui.store.experiment, request.path_params["id"])
    rows = await ui.read(views.job_rows, ui.store, experiment)
    return _page(request, "ui/job_rows.html", rows=rows)


async def job_page(request: Request) -> Response:
    """`/jobs/ID`: timeline, events, checkpoints, hyperparameters as sent, training data."""
    ui = _state(request)
    job = await ui.read(ui.store.job, request.path_params["id"])
    return _page(request, "ui/job.html", **await ui.read(views.job_detail, ui.store, job))


async def job_events_fragment(request: Request) -> Response:
    """The job page's timeline, problems, checkpoints and events alone, for live updates."""
    ui = _state(request)
    job = await ui.read(ui.store.job, request.path_params["id"])
    return _page(request, "ui/job_events.html", **await ui.read(views.job_detail, ui.store, job))


async def compare_page(request: Request) -> Response:
    """`/experiments/ID/compare?show=…`: the comparison, from the template report.html uses."""
    from fto.orchestrator.eval.html import comparison_context
    from fto.orchestrator.eval.report import comparison

    ui = _state(request)
    experiment = await ui.read(ui.store.experiment, request.path_params["id"])
    show = request.query_params.get("show", "all")
    show = show if show in SHOWS else "all"
    results = await ui.read(comparison, ui.store, experiment)
    context = await ui.read(comparison_context, ui.store, experiment, results, show)
    links = list(SHOW_LABELS.items())
    return _page(request, "ui/compare.html", experiment=experiment, links=links, **context)


async def data_index(request: Request) -> Response:
    """`/data`: the files the store references (registered with `fto ui --data FILE`, and experiments' files)."""
    ui = _state(request)
    files = await ui.read(views.data_files, ui.store)
    return _page(request, "ui/data_index.html", files=files)


async def data_page(request: Request) -> Response:
    """`/data/experiments/ID/ROLE` or `/data/files/ID`: validate and stats of a file the store references."""
    ui = _state(request)
    path, address = await _data_file(request)
    target = request.query_params.get("target") or None
    found = None
    problem = None
    try:
        found = await anyio.to_thread.run_sync(views.data_view, path, target)
    except (FtoError, OSError) as exc:
        problem = str(exc)
    return _page(request, "ui/data.html", path=path, address=address, target=target or "", found=found,
                 problem=problem, backends=ui.backends())  # fmt: skip


async def data_line_page(request: Request) -> Response:
    """`…/line?line=N` of a data page: one line of its file, where a finding points."""
    path, address = await _data_file(request)
    given = request.query_params.get("line", "") or "0"
    if not given.isdigit() or len(given) > 12:
        return JSONResponse({"error": f"line must be a line number, not {given[:40]!r}"}, 400)
    line = int(given)
    text: str | None = None
    try:
        text = await anyio.to_thread.run_sync(views.file_line, path, line)
    except OSError as exc:
        problem: str | None = str(exc)
    else:
        problem = None if text is not None else f"{path} has no line {line}"
    return _page(request, "ui/line.html", path=path, address=address, line=line, text=text, problem=problem)


async def _data_file(request: Request) -> tuple[str, str]:
    ui = _state(request)
    params = request.path_params
    return await ui.read(views.data_file, ui.store, params["kind"], params["id"], params.get("role", ""))


# JSON ------------------------------------------------------------------------------------------------------------


async def experiments_json(request: Request) -> Response:
    """The experiments page as JSON."""
    ui = _state(request)
    rows = await ui.read(views.experiments_overview, ui.store, request.query_params.get("q", ""))
    return JSONResponse([{**r, "started": str(r["started"]), "ended": r["ended"] and str(r["ended"])} for r in rows])


async def experiment_loss(request: Request) -> Response:
    """Every job's loss curves, downsampled (`x=step` or `x=tokens`)."""
    ui = _state(request)
    experiment = await ui.read(ui.store.experiment, request.path_params["id"])
    jobs = await ui.read(ui.store.jobs, experiment.id)
    return await _loss(request, ui, jobs)


async def job_loss(request: Request) -> Response:
    """One job's loss curves, downsampled."""
    ui = _state(request)
    job = await ui.read(ui.store.job, request.path_params["id"])
    return await _loss(request, ui, [job])


async def _loss(request: Request, ui: _State, jobs: list[Any]) -> Response:
    x = request.query_params.get("x", "step")
    x = x if x in XS else "step"
    limit = per_series(2 * len(jobs))  # a train and a validation series per job, at most
    # a finished job's curves do not change: drawn once, kept, so live refreshes read only the running jobs
    fresh = [j for j in jobs if (j.id, x, limit) not in ui.finished_series]
    metrics = await ui.read(ui.store.metric_rows, [j.id for j in fresh])
    labels = {j.id: f"{j.backend} {j.id}" for j in fresh}
    tokens = {j.id: j.trained_tokens for j in fresh}
    drawn = loss_series(metrics, labels, tokens, x, limit)
    if len(ui.finished_series) > SERIES_KEPT:  # a server left running for months keeps a bounded amount
        ui.finished_series.clear()
    for job in fresh:
        if job.status.terminal:
            ui.finished_series[(job.id, x, limit)] = [one for one in drawn if one["job"] == job.id]
    by_job = {j.id: [one for one in drawn if one["job"] == j.id] for j in fresh}
    series = [one for j in jobs for one in by_job.get(j.id) or ui.finished_series.get((j.id, x, limit), [])]
    return JSONResponse({"x": x, "series": series})


async def experiment_sweep(request: Request) -> Response:
    """A sweep's ranking (score against each swept value), once evaluated."""
    from fto.orchestrator.eval.report import comparison

    ui = _state(request)
    experiment = await ui.read(ui.store.experiment, request.path_params["id"])
    if not experiment.spec.points:
        return JSONResponse({"sweep": []})
    results = await ui.read(comparison, ui.store, experiment)
    return JSONResponse({"sweep": [r.model_dump(mode="json") for r in results.sweep]})


async def job_histogram(request: Request) -> Response:
    """Tokens per example of the file the job trained on, as a histogram and stats."""
    from fto.orchestrator.data.stats import dataset_stats

    ui = _state(request)
    job = await ui.read(ui.store.job, request.path_params["id"])
    experiment = await ui.read(ui.store.experiment, job.experiment_id)
    path = views.training_file(experiment.id, job.backend)
    if path is None:
        return JSONResponse({"histogram": None, "stats": None})
    section = experiment.spec.backends.get(job.backend)
    target = (section.type if section else None) or job.backend
    try:
        stats = await anyio.to_thread.run_sync(lambda: dataset_stats(path, target, job.base_model))
    except FtoError:  # a provider format the stats cannot read back: the page says so
        stats = await anyio.to_thread.run_sync(lambda: dataset_stats(path))
    return JSONResponse({"histogram": stats["total_tokens_histogram"], "stats": stats})


async def stream(request: Request) -> Response:
    """Server-sent events: `changed` whenever the store changes."""
    live = _state(request).live()
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(live.stream(), media_type="text/event-stream", headers=headers)


# actions ---------------------------------------------------------------------------------------------------------


async def act(request: Request) -> Response:
    """cancel / pause / resume a job, cancel or evaluate an experiment: the CLI's own code, when allowed."""
    ui = _state(request)
    if not ui.config.allow_actions:
        return JSONResponse({"error": "this dashboard is read-only: start it with `fto ui --allow-actions`"}, 403)
    if request.headers.get("x-fto-action") != "1":  # a page elsewhere cannot send this header (no CORS here)
        return JSONResponse({"error": "actions are sent by the dashboard's buttons"}, 403)
    kind, key, verb = request.path_params["kind"], request.path_params["id"], request.path_params["verb"]
    try:
        if verb == "evaluate" and kind == "experiments":
            message = await _evaluate(ui, key)
        elif verb == "cancel":
            asked = await ui.read(actions.cancel, ui.store, key)
            message = f"cancel requested for {len(asked)} job(s)"
        elif verb in ("pause", "resume") and kind == "jobs":
            job = await ui.read(getattr(actions, verb), ui.store, key)
            message = f"{verb} requested: {job.backend} {job.id}"
        else:
            return JSONResponse({"error": f"no action {verb} on {kind}"}, 404)
    except FtoError as exc:
        return JSONResponse({"error": str(exc)}, 409)
    ui.live().bump()
    return JSONResponse({"ok": True, "message": message})


async def _evaluate(ui: _State, key: str) -> str:
    experiment = await ui.read(ui.store.experiment, key)
    if ui.evaluations.get(experiment.id) == "running":
        return f"experiment {experiment.id} is being evaluated"
    ui.evaluations[experiment.id] = "running"

    def run() -> None:  # its own connection: evaluation writes while pages read
        from fto.orchestrator.api.experiments import Experiment

        store = Store(ui.store.location)
        try:
            Experiment(experiment, store).evaluate()  # what `fto eval` calls
            ui.evaluations[experiment.id] = "done"
        except Exception as exc:  # shown on the page; the dashboard goes on
            ui.evaluations[experiment.id] = f"failed: {exc}"
        finally:
            store.close()

    threading.Thread(target=run, name=f"evaluate-{experiment.id}", daemon=True).start()
    return f"evaluating {experiment.id}: the comparison page fills in when it ends"


async def _not_found(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": str(exc)}, 404)


async def openapi(request: Request) -> Response:
    """The JSON API's OpenAPI document."""
    from fto.orchestrator.ui.openapi import DOCUMENT

    return JSONResponse(DOCUMENT)


async def no_icon(request: Request) -> Response:
    """Browsers ask for an icon on every page: an empty answer, not a 404 in their console."""
    return Response(status_code=204)


ROUTES = [
    Route("/", experiments_page),
    Route("/favicon.ico", no_icon),
    Route("/openapi.json", openapi),
    Route("/experiments/{id}", experiment_page),
    Route("/experiments/{id}/jobs", job_rows_fragment),
    Route("/experiments/{id}/compare", compare_page),
    Route("/jobs/{id}", job_page),
    Route("/jobs/{id}/events", job_events_fragment),
    Route("/data", data_index),
    Route("/data/{kind:str}/{id}", data_page),
    Route("/data/{kind:str}/{id}/line", data_line_page),
    Route("/data/{kind:str}/{id}/{role}", data_page),
    Route("/data/{kind:str}/{id}/{role}/line", data_line_page),
    Route("/api/experiments", experiments_json),
    Route("/api/experiments/{id}/loss", experiment_loss),
    Route("/api/experiments/{id}/sweep", experiment_sweep),
    Route("/api/jobs/{id}/loss", job_loss),
    Route("/api/jobs/{id}/histogram", job_histogram),
    Route("/api/stream", stream),
    Route("/api/{kind:str}/{id}/{verb:str}", act, methods=["POST"]),
    Mount("/static", StaticFiles(directory=STATIC), name="static"),
]


def create_ui_app(config: UiConfig, guarded: bool = True) -> ASGIApp:
    """The dashboard's ASGI app (`fto ui`, and `/ui` under `fto serve`, whose own guard is outermost)."""
    from fto.orchestrator.errors import NotFoundError

    app = Starlette(routes=ROUTES, exception_handlers={NotFoundError: _not_found})
    app.state.ui = _State(config, Store(config.store_location))
    keyed = KeyGuard(app, config.api_key)
    return BrowserGuard(keyed, config.allowed_hosts) if guarded else keyed


class KeyGuard:
    """Off loopback every page and route needs the key: as a bearer token, or once as `?key=` in a browser
    (kept in an HttpOnly cookie for the pages that follow)."""

    def __init__(self, app: ASGIApp, api_key: str | None):
        self.app, self.api_key = app, api_key
        # The cookie holds a token derived from the key, never the key itself.
        self.session = hmac.new(api_key.encode(), b"fto ui session", "sha256").hexdigest() if api_key else ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.api_key is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        given = request.headers.get("authorization", "")
        token = given[7:] if given.lower().startswith("bearer ") else ""
        from_query = request.query_params.get("key")
        if from_query and _same(from_query, self.api_key):
            kept = [(k, v) for k, v in request.query_params.multi_items() if k != "key"]
            target = request.url.path + ("?" + "&".join(f"{k}={quote(v)}" for k, v in kept) if kept else "")
            response: Response = RedirectResponse(target, 303)  # the key leaves the address bar and history
            response.set_cookie(COOKIE, self.session, httponly=True, samesite="strict")
        elif _same(token, self.api_key) or _same(request.cookies.get(COOKIE, ""), self.session):
            await self.app(scope, receive, send)
            return
        else:
            response = JSONResponse({"error": "a key is required: send it as a bearer token, or open ?key=…"}, 401)
            response.headers["WWW-Authenticate"] = "Bearer"
        await response(scope, receive, send)


def _same(given: str, key: str) -> bool:
    return hmac.compare_digest(given.encode(), key.encode())
