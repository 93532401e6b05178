"""What a new user hit trying fto from a fresh clone, against the simulated provider (each failed before its fix)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.backends.sim.test_jobs_cli import _job_file
from tests.conftest import model_scores, run_fto
from tests.serving import free_port

pytestmark = pytest.mark.slow  # runs the provider and the CLI


def test_a_restarted_provider_gets_the_data_again_instead_of_failing_every_later_run(sim_server, tmp_path: Path):
    first = sim_server(duration=0.5)
    job = _job_file(tmp_path, first.url, duration=0.5, eval=None)
    assert run_fto("run", job).returncode == 0
    first.stop()  # a restart: the provider forgets its files, fto's upload cache does not
    restarted = sim_server(port=first.port, duration=0.5)  # the same provider, restarted
    job = _job_file(tmp_path, restarted.url, duration=0.5, eval=None)
    result = run_fto("run", job)
    assert result.returncode == 0, result.stdout + result.stderr
    status = json.loads(run_fto("status", "--json").stdout)
    assert status[-1]["status"] == "succeeded"
    logs = run_fto("logs", status[-1]["id"]).stdout
    assert "uploading it again" in logs


def test_a_failed_submission_says_why_in_logs_and_resume_agrees(sim_server, tmp_path: Path):
    server = sim_server(duration=0.5)
    job = _job_file(tmp_path, server.url, duration=0.5, eval=None)
    assert run_fto("run", job).returncode == 0
    server.stop()
    submitted = run_fto("submit", job)  # the provider is gone: refused before anything is recorded
    assert submitted.returncode != 0 and "fto sim serve" in submitted.stderr


def test_without_a_running_provider_run_fails_at_once_and_records_nothing(tmp_path: Path):
    job = _job_file(tmp_path, f"http://127.0.0.1:{free_port()}", eval=None)
    started = time.monotonic()
    result = run_fto("run", job)
    assert result.returncode == 2 and "start it with `fto sim serve`" in result.stderr
    assert time.monotonic() - started < 5  # one quick request, not 24 s of retries
    listed = run_fto("ls").stdout
    assert "fan" not in listed


def test_a_cancelled_job_shows_as_cancelling_or_cancelled_at_once_and_prefixes_work(sim_server, tmp_path: Path):
    server = sim_server(duration=60)
    job = _job_file(tmp_path, server.url, duration=60, eval=None)
    assert run_fto("submit", job).returncode == 0
    (entry,) = json.loads(run_fto("status", "--json").stdout)
    prefix = entry["id"][: len("job-") + 4]
    cancelled = run_fto("cancel", prefix)
    assert cancelled.returncode == 0 and entry["id"] in cancelled.stdout
    shown = json.loads(run_fto("status", prefix, "--json").stdout)
    assert shown[0]["status"] in ("cancelling", "cancelled")
    time.sleep(1.0)  # past the poll interval: status asks the provider
    assert json.loads(run_fto("status", entry["experiment_id"][:8], "--json").stdout)[0]["status"] == "cancelled"
    assert "cancel requested" in run_fto("logs", prefix).stdout


def test_the_fine_tuned_sim_model_answers_from_its_training_data(sim_server, tmp_path: Path):
    server = sim_server(duration=0.5)
    job = _job_file(tmp_path, server.url, duration=0.5)
    assert run_fto("run", job).returncode == 0
    report = json.loads(run_fto("compare", "--json").stdout)
    scores = {label: s["exact_match"] for label, s in model_scores(report).items()}
    assert scores["sim1/base"] == 0.0 and scores["sim1/fine-tuned"] > 0.3
