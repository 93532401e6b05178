"""`tracking: {mlflow: …}`: every job of a sim experiment logged to a real MLflow — a SQLite store, and
`mlflow server` on 127.0.0.1 over HTTP — read back through MLflow's own client."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from fto.orchestrator.store import Store
from tests.conftest import ANIMALS, run_fto
from tests.serving import free_port, wait_until_up

pytestmark = pytest.mark.slow
mlflow = pytest.importorskip("mlflow", reason="the dev extra installs mlflow")


def _run_tracked(sim_server, tmp_path, tracking_uri: str) -> tuple[str, list]:
    server = sim_server()
    sim = {"type": "sim", "url": server.url, "duration": 1.5, "min_poll_interval": 0.2}
    spec = {
        "name": "tracked",
        "data": {"train": str(ANIMALS), "validation": 0.1},
        "hyperparameters": {"epochs": 2, "learning_rate": 0.0002, "lora": {"r": 4}},
        "backends": {"a": sim, "b": sim},
        "eval": {"max_examples": 10, "scorers": ["exact_match"]},
        "tracking": {"mlflow": {"tracking_uri": tracking_uri, "experiment": "fto-tracked"}},
    }
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(spec))
    result = run_fto("run", str(job))
    assert result.returncode == 0, result.stderr
    (experiment,) = Store().experiments()
    return experiment.id, Store().jobs(experiment.id)


def _check_runs(tracking_uri: str, experiment_id: str, jobs: list) -> None:
    client = mlflow.tracking.MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name("fto-tracked")
    runs = {r.data.tags["fto.job_id"]: r for r in client.search_runs([found.experiment_id])}
    assert set(runs) == {j.id for j in jobs}  # one run per job, none twice
    for job in jobs:
        run = runs[job.id]
        assert run.info.status == "FINISHED" and run.data.tags["fto.experiment_id"] == experiment_id
        assert run.data.params["epochs"] == "2" and run.data.params["lora.r"] == "4"
        assert run.data.params["backend.type"] == "sim" and run.data.tags["fto.status"] == "succeeded"
        history = client.get_metric_history(run.info.run_id, "loss")
        stored = [m for m in Store().metrics(job.id) if m.loss is not None]
        assert [(h.step, round(h.value, 6)) for h in history] == [(m.step, round(m.loss, 6)) for m in stored]
        assert run.data.metrics["eval.fine_tuned.exact_match"] > run.data.metrics["eval.base.exact_match"]
        low, high = (
            run.data.metrics["eval.fine_tuned.exact_match.low"],
            run.data.metrics["eval.fine_tuned.exact_match.high"],
        )
        assert low <= run.data.metrics["eval.fine_tuned.exact_match"] <= high
        assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"report.html", "report.md"}


@pytest.mark.timeout(180)
def test_jobs_logged_to_an_mlflow_sqlite_store(sim_server, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment_id, jobs = _run_tracked(sim_server, tmp_path, uri)
    _check_runs(uri, experiment_id, jobs)
    assert any((tmp_path / "mlartifacts").rglob("report.html"))  # beside the database, not in the working folder


@pytest.mark.timeout(180)
def test_jobs_logged_to_an_mlflow_server(sim_server, tmp_path):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}", "--artifacts-destination",
         str(tmp_path / "artifacts")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ},
    )  # fmt: skip
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health", server, seconds=60)
        uri = f"http://127.0.0.1:{port}"
        experiment_id, jobs = _run_tracked(sim_server, tmp_path, uri)
        _check_runs(uri, experiment_id, jobs)
        assert any((tmp_path / "artifacts").rglob("report.html"))  # uploaded through the server
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_a_tracker_that_fails_never_stops_the_jobs(sim_server, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # MLflow's own backoff would only slow the test
    port = free_port()  # nothing listens there
    _, jobs = _run_tracked(sim_server, tmp_path, f"http://127.0.0.1:{port}")
    assert all(j.status.value == "succeeded" for j in jobs)
    warned = [e.message for j in jobs for e in Store().events(j.id) if e.message.startswith("tracking:")]
    assert warned and "MLflow failed" in warned[0]
