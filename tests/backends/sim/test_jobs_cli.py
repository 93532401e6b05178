"""Fan-out, crash safety and the job commands, through the real CLI against the simulated provider."""

import http.server
import json
import os
import random
import signal
import subprocess
import threading
import time
from typing import ClassVar

import pytest
import yaml

from fto.orchestrator.store import Store
from tests.conftest import ANIMALS, FTO, run_fto

pytestmark = pytest.mark.slow  # runs jobs through the CLI against a provider


def _job_file(
    tmp_path, url: str, backends: int = 1, duration: float = 2.0, options: dict | None = None, **extra
) -> str:
    sections = {
        f"sim{i}": {
            "type": "sim",
            "url": url,
            "duration": duration,
            "min_poll_interval": 0.3,
            "max_poll_interval": 0.6,
            "timeout": 0.5,
            **(options or {}),
        }
        for i in range(1, backends + 1)
    }
    spec = {
        "name": "fan",
        "data": {"train": str(ANIMALS), "validation": 0.1},
        "backends": sections,
        "eval": {"max_examples": 5, "max_new_tokens": 4},
        **extra,
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def test_fan_out_to_several_backends_in_one_experiment(sim_server, tmp_path):
    server = sim_server(duration=1.5)
    job = _job_file(tmp_path, server.url, backends=3)
    result = run_fto("submit", job)
    assert result.returncode == 0, result.stderr
    (experiment,) = Store().experiments()
    assert [j.backend for j in Store().jobs(experiment.id)] == ["sim1", "sim2", "sim3"]
    waited = run_fto("wait", experiment.id)
    assert waited.returncode == 0, waited.stdout + waited.stderr
    status = run_fto("status", experiment.id, "--json")
    assert status.returncode == 0 and [j["status"] for j in json.loads(status.stdout)] == ["succeeded"] * 3
    assert server.stats()["requests"]["POST /v1/files"] == 1  # validated and uploaded once for the three

    again = run_fto("submit", job)  # the same content again: the upload is reused
    assert again.returncode == 0 and server.stats()["requests"]["POST /v1/files"] == 1
    listing = run_fto("ls")
    assert listing.stdout.count("fan") == 2


def _until(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_sigkill_at_random_points_of_submit_and_poll_loses_nothing_and_submits_nothing_twice(sim_server, tmp_path):
    server = sim_server(duration=3, fail_rate=0.1, stall=0.6)
    job = _job_file(tmp_path, server.url, backends=12, duration=3)
    rng = random.Random(7)
    for round_ in range(4):
        store_has_experiment = bool(Store().experiments())
        command = [*FTO, "wait"] if store_has_experiment else [*FTO, "submit", job]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 1.5) if round_ else rng.uniform(0.8, 1.2))
        process.send_signal(signal.SIGKILL)
        process.wait()
    if not Store().experiments():  # killed before the experiment was recorded: the user runs submit again
        assert run_fto("submit", job).returncode in (0, 1)
    final = run_fto("wait", timeout=120)
    assert final.returncode == 0, final.stdout + final.stderr

    store = Store()
    (experiment,) = store.experiments()
    jobs = store.jobs(experiment.id)
    assert len(jobs) == 12 and all(j.status.value == "succeeded" for j in jobs)
    stats = server.stats()
    assert stats["duplicates"] == {} and stats["jobs"] == 12
    assert {j.provider_job_id for j in jobs} == {f"simjob-{i}" for i in range(1, 13)}


def test_two_fto_processes_never_poll_the_same_job(sim_server, tmp_path):
    server = sim_server(duration=3)
    job = _job_file(tmp_path, server.url, backends=6, duration=3, options={"batch_poll": False})  # job by job
    assert run_fto("submit", job).returncode == 0
    started = time.time()
    waits = [subprocess.Popen([*FTO, "wait"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
    assert [w.wait(timeout=60) for w in waits] == [0, 0]
    stats = server.stats()
    # one process's worth of polls (at most one per 0.3 s per job while it changes), not two
    most = sum((end - started) / 0.3 + 2 for end in stats["ends"].values())
    assert stats["requests"]["GET /v1/jobs/{id}"] <= most


def test_a_provider_error_that_cannot_succeed_is_not_retried(sim_server, tmp_path):
    server = sim_server(duration=2)
    assert run_fto("submit", _job_file(tmp_path, server.url)).returncode == 0
    store = Store()
    (job,) = store.jobs()
    with store.db.tx() as tx:  # a job the provider does not know: 404 on every poll
        tx.execute("UPDATE jobs SET provider_job_id = 'simjob-404' WHERE id = ?", (job.id,))
    result = run_fto("wait", job.id)
    assert result.returncode == 1 and "no job 'simjob-404' (404)" in result.stderr
    requests = server.stats()["requests"]
    assert requests.get("GET /v1/jobs/{id}") == 1


def test_cancel_takes_a_whole_experiment(sim_server, tmp_path):
    server = sim_server(duration=60)
    assert run_fto("submit", _job_file(tmp_path, server.url, backends=2, duration=60)).returncode == 0
    (experiment,) = Store().experiments()
    assert "cancel requested" in run_fto("cancel", experiment.id).stdout
    waited = run_fto("wait", experiment.id)
    assert waited.returncode == 1
    assert [j.status.value for j in Store().jobs(experiment.id)] == ["cancelled", "cancelled"]


def test_logs_follow_prints_events_until_the_end(sim_server, tmp_path):
    server = sim_server(duration=1.5)
    assert run_fto("submit", _job_file(tmp_path, server.url)).returncode == 0
    (job,) = Store().jobs()
    result = run_fto("logs", job.id, "-f")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any("training started" in line for line in lines) and any("job succeeded" in line for line in lines)
    assert lines[-1] == "succeeded"


class _Hook(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list] = []

    def do_POST(self):
        _Hook.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_webhook_is_called_once_when_the_experiment_ends(sim_server, tmp_path):
    server = sim_server(duration=1)
    hook = http.server.HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    try:
        os.environ["FTO_TEST_HOOK"] = f"http://127.0.0.1:{hook.server_port}/done"
        job = _job_file(tmp_path, server.url, backends=2, notify={"webhook_env": "FTO_TEST_HOOK"})
        result = run_fto("run", job)
        assert result.returncode == 0, result.stderr
        assert run_fto("wait").returncode == 0  # nothing left: no second notification
    finally:
        os.environ.pop("FTO_TEST_HOOK", None)
        hook.shutdown()
    (payload,) = _Hook.received
    assert payload["status"] == "succeeded" and [j["backend"] for j in payload["jobs"]] == ["sim1", "sim2"]
