"""The `fto` command as a user meets it: real subprocesses, a real training run, a real kill -9."""

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import FTO, QUICKSTART, REPO, SHARED_DATA, model_scores, run_fto


def test_help_is_fast_and_imports_no_training_stack():
    probe = (
        "import sys; from click.testing import CliRunner; from fto.orchestrator.cli import cli;"
        "r = CliRunner().invoke(cli, ['--help']); assert r.exit_code == 0, r.output;"
        "r = CliRunner().invoke(cli, ['schema']); assert r.exit_code == 0, r.output;"
        "print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip() == "[]"
    fto = os.path.join(os.path.dirname(sys.executable), "fto")
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run([fto, "--help"], check=True, capture_output=True)
        timings.append(time.perf_counter() - started)
    assert sorted(timings)[1] < 0.5, timings


def test_non_training_commands_never_import_the_training_stack(tmp_path):
    toy = SHARED_DATA / "openai-cookbook" / "toy_chat_fine_tuning.jsonl"
    probe = (
        "import sys; from click.testing import CliRunner; from fto.orchestrator.cli import cli; r = CliRunner();"
        f"r.invoke(cli, ['data', 'validate', '{toy}', '--for', 'openai']);"
        f"assert r.invoke(cli, ['data', 'stats', '{toy}', '--json']).exit_code == 0;"
        f"c = r.invoke(cli, ['data', 'convert', '{toy}', '--to', 'sharegpt', '-o', '{tmp_path}/o.json']);"
        "assert c.exit_code == 0;"
        "assert r.invoke(cli, ['ls']).exit_code == 0; r.invoke(cli, ['status']);"
        "print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout + result.stderr


def test_schema_is_json_schema_of_the_job_file_with_backend_options():
    schema = json.loads(run_fto("schema").stdout)
    assert schema["additionalProperties"] is False
    assert {"name", "data", "method", "hyperparameters", "backends", "eval"} <= set(schema["properties"])
    local = schema["properties"]["backends"]["properties"]["local"]
    assert local["properties"]["device"]["enum"] == ["auto", "cpu", "cuda", "mps"]


@pytest.mark.parametrize(
    ("change", "key", "message"),
    [
        ({"hyperparameters": {"epohcs": 3}}, "epohcs:", "hyperparameters.epohcs: unknown key (did you mean 'epochs'?)"),
        ({"data": {"train": "missing.jsonl"}}, "train:", "data.train: data file not found: missing.jsonl"),
        ({"backends": {"nosuch": {"model": "x"}}}, "nosuch:", "backends.nosuch: unknown backend 'nosuch' (available:"),
    ],
)
def test_a_bad_job_file_fails_with_one_line_naming_it(write_job, fto_home, change, key, message):
    job = write_job(change)
    line = next(n for n, text in enumerate(job.read_text().splitlines(), 1) if text.strip().startswith(key))
    result = run_fto("run", str(job))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"error: {job}:{line}: {message}" in result.stderr
    assert not (fto_home / "experiments").exists()  # nothing was submitted


def test_an_unknown_backend_flag_fails_with_one_line(write_job):
    result = run_fto("run", str(write_job()), "--backend", "locall")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "unknown backend 'locall' — did you mean 'local'? (available:" in result.stderr


def test_bad_training_data_names_the_line_and_submits_nothing(write_job, tmp_path, fto_home):
    data = tmp_path / "data.jsonl"
    data.write_text(
        '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n'
        '{"messages": [{"role": "usr", "content": "hi"}]}\n'
    )
    result = run_fto("submit", str(write_job({"data": {"train": str(data)}})))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{data}:2: messages[0].role:" in result.stderr
    assert not (fto_home / "experiments").exists()


@pytest.mark.slow
def test_quickstart_runs_end_to_end_and_the_fine_tuned_model_wins():
    result = subprocess.run(
        [*FTO, "run", str(QUICKSTART), "--backend", "local"], capture_output=True, text=True, timeout=300, cwd=REPO
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "local/fine-tuned" in result.stdout and "report:" in result.stdout
    report = json.loads(run_fto("compare", "--json").stdout)
    scores = model_scores(report)
    assert scores["local/base"]["exact_match"] < 0.1
    assert scores["local/fine-tuned"]["exact_match"] > 0.8
    assert scores["local/fine-tuned"]["token_f1"] > 0.8
    assert scores["local/fine-tuned"]["perplexity"] < scores["local/base"]["perplexity"] / 10
    assert report["comparisons"][0]["significant"]
    (job,) = report["jobs"]
    assert job["status"] == "succeeded" and job["final_loss"] < 0.1
    status = json.loads(run_fto("status", report["experiment"], "--json").stdout)
    assert status[0]["status"] == "succeeded" and status[0]["fine_tuned_model"].endswith("adapter")
    # said on screen: the embedded base starts from random weights; lower perplexity is better; which way it went
    assert "random weights" in result.stdout and "lower is better: perplexity" in result.stdout
    assert "significant: local/fine-tuned is better" in result.stdout
    compared = run_fto("compare", report["experiment"])
    assert compared.returncode == 0 and "perplexity: local/fine-tuned vs local/base" in compared.stdout
    assert "report:" in compared.stdout
    _check_the_perplexity_chart_in_chromium(Path(compared.stdout.split("report: ")[1].split()[0]))
    _check_the_job_pages(report["experiment"])


def _check_the_job_pages(experiment_id: str) -> None:
    """The dashboard's page of each job (176 steps: checkpoints reported by the worker, without metrics)."""
    from starlette.testclient import TestClient

    from fto.orchestrator.store import Store
    from fto.orchestrator.ui.app import UiConfig, create_ui_app

    client = TestClient(create_ui_app(UiConfig()), base_url="http://127.0.0.1")
    for job in Store().jobs(experiment_id):
        for path in (f"/jobs/{job.id}", f"/jobs/{job.id}/events"):
            page = client.get(path)
            assert page.status_code == 200, (path, page.text[:300])
            assert 'id="checkpoints"' in page.text


def _check_the_perplexity_chart_in_chromium(report: Path) -> None:
    """Each metric on its own scale: a perplexity of 600 fills the chart, one of 2 barely shows; labels clear."""
    from tests.backends.sim.test_report import CHROMIUM, FLAGS

    if CHROMIUM is None:
        pytest.skip("needs Debian's chromium (.ci/run installs it)")
    dom = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={report.parent / 'chromium'}", "--dump-dom", report.as_uri()],
        capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    chart = dom.split('id="scores-perplexity"', 1)[1].split("</svg>", 1)[0]
    widths = [float(w) for w in re.findall(r'class="bar"[^>]*width="([0-9.]+)"', chart)]
    whisker_ends = [float(x) for x in re.findall(r'class="interval"[^>]*x2="([0-9.]+)"', chart)]
    labels = [float(x) for x in re.findall(r'class="value" x="([0-9.]+)"', chart)]
    base, tuned = widths
    assert 600 < base <= 700 and tuned < base / 100, widths  # base ≈ the whole scale (690 px), fine-tuned ≈ 2 px
    assert min(labels) > max(whisker_ends), (labels, whisker_ends)
    assert "(lower is better)" in dom and "n/a" not in chart
    ticks = dom.split('id="loss-curves"', 1)[1].split("</svg>", 1)[0].count('class="tick"')
    assert ticks >= 6  # the loss chart has ticks on both axes


def _job_status(fto_home) -> str | None:
    try:
        with sqlite3.connect(fto_home / "fto.db") as db:
            row = db.execute("SELECT status FROM jobs").fetchone()
    except sqlite3.OperationalError:
        return None
    return row[0] if row else None


@pytest.mark.slow
def test_kill_9_during_training_then_wait_finishes_the_job(write_job, fto_home):
    job = write_job({"hyperparameters": {"epochs": 20}})
    run = subprocess.Popen([*FTO, "run", str(job)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _job_status(fto_home) != "running" and time.monotonic() < deadline:
        assert run.poll() is None, "fto run ended before training started"
        time.sleep(0.1)
    assert _job_status(fto_home) == "running"
    os.kill(run.pid, signal.SIGKILL)
    run.wait()

    status = json.loads(run_fto("status", "--json").stdout)
    assert [j["status"] for j in status] == ["running"]  # the store still has it, mid-training
    waited = run_fto("wait", status[0]["id"])
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert json.loads(run_fto("status", status[0]["id"], "--json").stdout)[0]["status"] == "succeeded"
    evaluated = run_fto("eval")
    assert evaluated.returncode == 0, evaluated.stderr
    assert "local/fine-tuned" in evaluated.stdout


def test_status_of_an_unknown_job_is_one_clear_line():
    result = run_fto("status", "job-doesnotexist")
    assert result.returncode == 1 and result.stderr.startswith("error: no job 'job-doesnotexist'")


def test_the_hosted_example_is_a_valid_job_for_every_backend(monkeypatch):
    """examples/hosted.yaml parses, and each section is a valid configuration of its backend."""
    from fto.backends import registry
    from fto.orchestrator.config import load_job

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("FTO_TODAY", "2026-12-01")  # before OpenAI's last day for new jobs
    loaded = load_job(REPO / "examples" / "hosted.yaml", None)
    hosted = {"azure", "nebius", "sagemaker", "together", "fireworks", "vertex", "bedrock", "openai"}
    assert set(loaded.backends) == {"local", *hosted}
    for name in loaded.backends:
        assert registry.create(name, loaded.spec.backends[name]).name == name
    result = run_fto("submit", str(REPO / "examples" / "hosted.yaml"), "--backend", "openai")
    assert result.returncode != 0 and "set OPENAI_API_KEY" in result.stderr
    assert "exp-" not in result.stdout  # refused before anything was recorded
