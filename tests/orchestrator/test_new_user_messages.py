"""Messages a new user met that misled them; each now says what is wrong and what to do (CLI in a subprocess)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import ANIMALS, run_fto


def test_an_unknown_target_format_is_named_as_the_problem(tmp_path: Path):
    result = run_fto("data", "convert", str(ANIMALS), "--to", "parquet", "-o", str(tmp_path / "x"))
    assert result.returncode == 2 and result.stderr.startswith("error: --to: unknown target 'parquet'")
    assert "--skip-unwritable" not in result.stderr and not (tmp_path / "x").exists()


def test_a_system_message_is_named_when_prompt_completion_cannot_hold_it(tmp_path: Path):
    result = run_fto("data", "convert", str(ANIMALS), "--to", "prompt_completion", "-o", str(tmp_path / "x"))
    assert result.returncode == 2 and "cannot hold a system message" in result.stderr


def test_the_embedded_model_has_no_tokenizer_to_convert_with(tmp_path: Path):
    out = tmp_path / "x.jsonl"
    result = run_fto("data", "convert", str(ANIMALS), "--to", "local", "--model", "embedded:tiny-llama", "-o", str(out))
    assert result.returncode == 2 and "trained per job" in result.stderr and "Repo id" not in result.stderr


def test_stats_say_estimate_once_and_warn_about_an_unknown_model():
    local = run_fto("data", "stats", str(ANIMALS), "--for", "local")
    assert local.returncode == 0 and local.stdout.count("estimates") == 1  # "(counts are estimates)", once
    unknown = run_fto("data", "stats", str(ANIMALS), "--for", "openai", "--model", "gpt-99")
    assert "gpt-99 is not in openai's model table: its token limit and price are unknown" in unknown.stdout


def test_an_option_is_named_once(tmp_path: Path):
    result = run_fto("data", "split", str(ANIMALS), "--validation", "1.5", "-o", str(tmp_path))
    assert result.stderr.strip() == "error: --validation: must lie between 0 and 1, got 1.5"


def test_a_misspelt_scorer_gets_a_suggestion(write_job):
    result = run_fto("submit", str(write_job({"eval": {"scorers": ["exact_mtch"]}})))
    assert result.returncode == 2 and "did you mean 'exact_match'?" in result.stderr


def test_wait_help_describes_its_argument():
    assert "KEY is a job id, an experiment id or name, or a unique prefix" in run_fto("wait", "--help").stdout


def test_status_in_80_columns_keeps_ids_whole(monkeypatch: pytest.MonkeyPatch, fto_home: Path):
    from fto.orchestrator.store import Store
    from fto.schemas import JobSpec

    spec = JobSpec.model_validate({"name": "demo", "data": {"train": "t.jsonl"}, "backends": {"local": {}}})
    _, (created,) = Store().create_experiment(spec, None, ["local"])
    Store().fail(created.id, "the model folder /nonexistent/model-folder-for-a-failing-job has no config.json")
    monkeypatch.setenv("COLUMNS", "80")
    shown = run_fto("status")
    (job,) = json.loads(run_fto("status", "--json").stdout)
    assert job["id"] in shown.stdout and job["experiment_id"] in shown.stdout
    assert os.environ["COLUMNS"] == "80"


def test_status_fits_80_columns_piped_with_long_paths_and_errors(monkeypatch: pytest.MonkeyPatch, fto_home: Path):
    from fto.orchestrator.store import Store
    from fto.schemas import JobSpec, JobStatus, ProviderJob

    store = Store()
    spec = JobSpec.model_validate({"name": "wide", "data": {"train": "t.jsonl"}, "backends": {"a": {}, "b": {}}})
    _, (done, failed) = store.create_experiment(spec, None, ["a", "b"])
    adapter = str(fto_home / "backends" / "local" / "jobs" / ("job-" + "x" * 90) / "adapter")
    store.set_submitted(done.id, "p1")
    store.update_from_provider(done.id, ProviderJob(status=JobStatus.SUCCEEDED, fine_tuned_model=adapter))
    reason = "worker process exited unexpectedly; last lines of the log:\n" + "RuntimeError: " + "bad thing " * 30
    store.fail(failed.id, reason)
    monkeypatch.setenv("COLUMNS", "80")
    shown = run_fto("status").stdout  # piped: not a terminal
    lines = shown.splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    assert len(lines) < 15  # before: ~55 lines a job, one character each
    assert done.id in shown and failed.id in shown and "adapter" in shown
    assert " ".join(shown.split()).count("bad thing") == 30  # the whole error, wrapped below its row


def test_convert_into_a_folder_not_made_yet_makes_it(tmp_path: Path):
    out = tmp_path / "out" / "deeper" / "x.jsonl"
    done = run_fto("data", "convert", str(ANIMALS), "--to", "sharegpt", "-o", str(out))
    assert done.returncode == 0 and len(out.read_text().splitlines()) == 500
    (tmp_path / "a-file").write_text("")
    blocked = run_fto("data", "convert", str(ANIMALS), "--to", "sharegpt", "-o", str(tmp_path / "a-file" / "x.jsonl"))
    assert blocked.returncode == 2 and "Traceback" not in blocked.stderr and "a file is in the way" in blocked.stderr


def test_a_truncated_line_is_placed_at_its_end(tmp_path: Path):
    line = ANIMALS.read_text().splitlines()[0]
    cut = line[: len(line) // 2]
    data = tmp_path / "cut.jsonl"
    data.write_text(f"{line}\n{cut}\n{line}\n")
    shown = run_fto("data", "validate", str(data)).stdout
    assert "cut.jsonl:2: invalid JSON" in shown and f"at column {len(cut) + 1} (truncated line?)" in shown


def test_a_misspelt_backend_flag_suggests_the_name(write_job):
    done = run_fto("submit", str(write_job()), "--backend", "toghether")
    assert done.returncode == 2 and "--backend: unknown backend 'toghether' — did you mean 'together'?" in done.stderr


def test_a_backend_without_a_section_says_it_runs_on_its_defaults(write_job):
    job = write_job({"backends": {"local": None, "sim": {}}, "hyperparameters": {"epochs": 1}})
    done = run_fto("submit", str(job), "--backend", "local")
    run_fto("cancel", json.loads(run_fto("status", "--json").stdout)[0]["experiment_id"])
    assert done.returncode == 0, done.stderr
    assert "has no `local:` section: local runs with its defaults on embedded:tiny-llama" in done.stderr
