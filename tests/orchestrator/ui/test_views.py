"""The dashboard's pieces that need no browser: downsampling, the per-example filters, the key, every route."""

from __future__ import annotations

import json
import math

import pytest
from starlette.testclient import TestClient

from fto.orchestrator.eval.examples import example_rows
from fto.orchestrator.paths import experiment_dir
from fto.orchestrator.store import Store
from fto.orchestrator.ui.app import ROUTES, UiConfig, create_ui_app
from fto.orchestrator.ui.series import MAX_POINTS, MIN_POINTS, downsample, loss_series, per_series
from fto.schemas import JobSpec, Metric
from fto.schemas.results import ExperimentResults, ModelResult, ModelRole, Score, Target


def test_downsampling_caps_points_and_keeps_the_extremes():
    xs = [float(i) for i in range(100_000)]
    ys = [math.sin(i / 500) for i in range(100_000)]
    ys[31_337] = 50.0  # a spike must survive
    kept_x, kept_y = downsample(xs, ys, 500)
    assert len(kept_x) <= 500 and len(kept_x) == len(kept_y)
    assert kept_x[0] == 0 and kept_x[-1] == 99_999 and kept_x == sorted(kept_x)
    assert 50.0 in kept_y and min(kept_y) == min(ys)
    assert downsample([1.0, 2.0], [3.0, 4.0], 500) == ([1.0, 2.0], [3.0, 4.0])  # short series untouched


def test_many_series_share_a_budget_of_points_but_never_drop_below_a_floor():
    assert (
        per_series(1) == MAX_POINTS and per_series(2_000) == 25 if MIN_POINTS < 25 else per_series(2_000) == MIN_POINTS
    )
    assert per_series(200) == 250


def test_loss_series_per_job_and_kind_and_on_a_tokens_axis():
    rows = [{"step": s, "total_steps": 2000, "loss": 1 / s, "valid_loss": 2 / s if s % 100 == 0 else None}
            for s in range(1, 2001)]  # fmt: skip
    series = loss_series({"j1": rows, "j2": []}, {"j1": "a j1", "j2": "b j2"}, {"j1": 4000, "j2": None})
    assert [(s["label"], s["kind"]) for s in series] == [("a j1 train", "train"), ("a j1 validation", "validation")]
    assert len(series[0]["x"]) <= MAX_POINTS and len(series[1]["x"]) == 20
    by_tokens = loss_series({"j1": rows, "j2": rows}, {"j1": "a", "j2": "b"}, {"j1": 4000, "j2": None}, axis="tokens")
    assert {s["job"] for s in by_tokens} == {"j1"}  # j2's trained tokens are unknown: not drawn on a wrong axis
    assert by_tokens[0]["x"][-1] == 4000.0


def _scored(experiment_id: str, target: str, scores: list[float]) -> None:
    folder = experiment_dir(experiment_id) / "eval"
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"line": i + 1, "prompt": f"q{i}", "output": f"{target} {i}", "reference": "r", "scores": {"f1": s}}
            for i, s in enumerate(scores)]  # fmt: skip
    (folder / f"{target.replace('/', '.')}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_the_example_filters_find_better_worse_and_disagreements():
    store = Store()
    spec = JobSpec.model_validate({"name": "x", "data": {"train": "t.jsonl"}})
    experiment, _ = store.create_experiment(spec, None, [])
    _scored(experiment.id, "a/base", [0.5, 0.5, 0.5, 0.2])
    _scored(experiment.id, "a/fine-tuned", [1.0, 0.0, 0.5, 0.2])
    models = [
        ModelResult(target=Target(label=label, section="a", role=role, model="m", job="job-a"), examples=4,
                    scores={"f1": Score(value=0.5)})
        for label, role in (("a/base", ModelRole.BASE), ("a/fine-tuned", ModelRole.FINE_TUNED))
    ]  # fmt: skip
    data = ExperimentResults(experiment=experiment.id, name="x", scorers=["f1"], models=models, jobs=[],
                             comparisons=[])  # fmt: skip
    lines = {show: [r.line for r in example_rows(store, experiment, data, show).rows]
             for show in ("all", "better", "worse", "disagree")}  # fmt: skip
    assert lines == {"all": [1, 2, 3, 4], "better": [1], "worse": [2], "disagree": [1, 2]}
    worse = example_rows(store, experiment, data, "worse")
    assert (worse.matching, worse.total) == (1, 4)
    assert [a.versus_base for a in worse.rows[0].answers] == ["", "worse"]
    assert example_rows(store, experiment, data, "all", limit=2).rows[-1].line == 2  # capped, counted in full
    assert example_rows(store, experiment, data, "all", limit=2).matching == 4


@pytest.fixture
def stocked():
    """A store with one experiment of two jobs, one with metrics."""
    store = Store()
    spec = JobSpec.model_validate({"name": "demo", "data": {"train": "t.jsonl"}, "backends": {"a": {}, "b": {}}})
    experiment, jobs = store.create_experiment(spec, None, ["a", "b"])
    store.add_updates(jobs[0].id, [], [Metric(step=s, total_steps=10, loss=1 / s) for s in range(1, 6)], None)
    return experiment, jobs


def _paths(experiment_id: str, job_id: str) -> list[tuple[str, str]]:
    """Every route of the app, with real ids filled in."""
    found = []
    for route in ROUTES:
        path = getattr(route, "path", "")
        if path == "/static":
            found.append(("GET", "/static/dashboard.js"))
            continue
        for method in sorted(getattr(route, "methods", None) or {"GET"}):
            if method == "HEAD":
                continue
            if path.startswith("/data/"):  # an experiment's file by role, or a registered file by id
                kind = "experiments" if "{role}" in path else "files"
                key = experiment_id if kind == "experiments" else Store().register_file("/nowhere/t.jsonl")
                found.append((method, path.replace("{kind:str}", kind).replace("{id}", key).replace("{role}", "train")))
                continue
            filled = path.replace("{kind:str}", "jobs").replace("{verb:str}", "cancel")
            filled = filled.replace("{id}", experiment_id if "experiments" in filled else job_id)
            found.append((method, filled))
    return found


def test_without_the_key_every_page_and_route_is_401(stocked):
    experiment, jobs = stocked
    key = "k" * 24
    client = TestClient(create_ui_app(UiConfig(api_key=key, allow_actions=True)), base_url="http://127.0.0.1")
    paths = [p for p in _paths(experiment.id, jobs[0].id) if p[1] != "/api/stream"]  # a stream never ends
    assert len(paths) >= 14
    for method, path in [*paths, ("GET", "/api/stream")]:
        response = client.request(method, path, headers={"Authorization": "Bearer wrong-key-wrong-key"})
        assert response.status_code == 401, (method, path)
        assert client.request(method, path).status_code == 401, (method, path)
    for method, path in paths:
        if method == "GET":
            assert client.get(path, headers={"Authorization": f"Bearer {key}"}).status_code in (200, 204), path


def test_a_browser_opens_once_with_the_key_and_keeps_it_in_a_cookie(stocked):
    key = "k" * 24
    client = TestClient(create_ui_app(UiConfig(api_key=key)), base_url="http://127.0.0.1", follow_redirects=False)
    opened = client.get(f"/?sort=name&key={key}")
    assert opened.status_code == 303 and opened.headers["location"] == "/?sort=name"  # the key leaves the URL
    cookie = opened.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and key not in cookie  # a token, not the key
    assert client.get("/?sort=name").status_code == 200  # the cookie came back
    assert (
        TestClient(create_ui_app(UiConfig(api_key=key)), base_url="http://127.0.0.1")
        .get(f"/?key={'x' * 24}")
        .status_code
        == 401
    )


def test_pages_show_the_store_and_buttons_are_refused_when_read_only(stocked):
    experiment, jobs = stocked
    client = TestClient(create_ui_app(UiConfig()), base_url="http://127.0.0.1")
    page = client.get(f"/experiments/{experiment.id}").text
    assert jobs[0].id in page and jobs[1].id in page and "disabled" in page
    loss = client.get(f"/api/experiments/{experiment.id}/loss").json()
    assert [len(s["x"]) for s in loss["series"]] == [5]
    refused = client.post(f"/api/jobs/{jobs[0].id}/cancel", headers={"X-FTO-Action": "1"})
    assert refused.status_code == 403 and "--allow-actions" in refused.json()["error"]
    writable = TestClient(create_ui_app(UiConfig(allow_actions=True)), base_url="http://127.0.0.1")
    assert writable.post(f"/api/jobs/{jobs[0].id}/cancel").status_code == 403  # not from the dashboard's button
    bad_line = client.get(f"/data/experiments/{experiment.id}/train/line?line=abc")
    assert bad_line.status_code == 400 and "'abc'" in bad_line.json()["error"]
    assert client.get("/data/line?path=/etc/hostname&line=1").status_code == 404  # no request names a path
    missing = client.get("/experiments/exp-nope")
    assert missing.status_code == 404 and "exp-nope" in missing.json()["error"]
    overview = client.get("/api/experiments").json()
    assert overview[0]["counts"] == {"pending": 2} and overview[0]["name"] == "demo"


def test_fto_serve_mounts_the_dashboard_under_ui_behind_its_key(stocked, tmp_path):
    from fto.orchestrator.serve import ServeConfig, create_app

    experiment, _ = stocked
    key = "s" * 24
    client = TestClient(
        create_app(ServeConfig(root=tmp_path / "serve", base_models=(), api_key=key)), base_url="http://127.0.0.1"
    )
    assert client.get("/ui/").status_code == 401
    page = client.get(f"/ui/experiments/{experiment.id}", headers={"Authorization": f"Bearer {key}"})
    assert page.status_code == 200 and 'href="/ui/static/vendor/uPlot.min.css"' in page.text  # links stay under /ui
    assert client.get("/ui/static/dashboard.js", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert client.get("/v1/models").status_code == 401  # the API keeps its own guard


def test_a_job_page_shows_checkpoints_reported_without_metrics(stocked):
    from fto.schemas import JobEvent

    _, jobs = stocked
    from datetime import UTC, datetime

    event = JobEvent(created_at=datetime.now(UTC), message="checkpoint at step 50",
                     data={"checkpoint": "/x/checkpoint-50", "step": 50})  # fmt: skip
    Store().add_updates(jobs[0].id, [event], [], None)
    client = TestClient(create_ui_app(UiConfig()), base_url="http://127.0.0.1")
    page = client.get(f"/jobs/{jobs[0].id}")
    assert page.status_code == 200 and "/x/checkpoint-50" in page.text


def test_the_backends_column_names_where_jobs_ran_not_every_section():
    from fto.orchestrator.ui.views import experiments_overview

    store = Store()
    sections = {"quick": {"type": "sim"}, "local": {}, "together": {}}
    spec = JobSpec.model_validate({"name": "picked", "data": {"train": "t.jsonl"}, "backends": sections})
    store.create_experiment(spec, None, ["quick", "local"])  # `--backend quick,local`: together never ran
    (row,) = experiments_overview(store)
    assert row["backends"] == ["local", "sim"]
