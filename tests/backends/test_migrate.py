"""`fto migrate`: an experiment that ran on `openai` (a loopback OpenAI checked against OpenAI's spec) moved to
Azure OpenAI and Nebius (loopbacks checked against their specs): the job file written with models mapped and
shown, run as a new experiment whose comparison sets the old fine-tuned model beside the new ones (its answers
reused from the store, not asked again); bad targets and unmappable models in one line."""

from __future__ import annotations

import json

import pytest
import yaml

from fto.orchestrator.store import Store
from fto.schemas import JobStatus
from tests.conftest import run_fto

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture
def old_experiment(openai_api, write_job, fto_home):
    job_file = write_job({"backends": {"openai": openai_api.section},
                          "eval": {"scorers": ["exact_match"], "max_examples": 10}}, name="old.yaml")  # fmt: skip
    result = run_fto("run", str(job_file), "--backend", "openai", timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    [experiment] = Store().experiments()
    return experiment


def test_migrate_writes_runs_and_compares_old_and_new(old_experiment, openai_api, azure_api, nebius_api, tmp_path):
    sections = tmp_path / "sections.yaml"
    sections.write_text(yaml.safe_dump({"backends": {"azure": azure_api.section, "nebius": nebius_api.section}}))
    out = tmp_path / "moved.yaml"
    asked_before = len(openai_api.completions)
    result = run_fto("migrate", old_experiment.id, "--to", "azure,nebius", "--sections", str(sections),
                     "-o", str(out), "--run", timeout=400)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    shown = " ".join(result.stdout.split())
    assert "azure: gpt-4o-mini-2024-07-18 → gpt-4o-mini-2024-07-18 (the same model)" in shown
    assert "nebius: gpt-4o-mini-2024-07-18 → meta-llama/Meta-Llama-3.1-8B-Instruct (nearest: a small model" in shown

    written = yaml.safe_load(out.read_text())
    assert set(written["backends"]) == {"azure", "nebius"}
    [old_job] = Store().jobs(old_experiment.id)
    assert written["eval"]["compare_with"] == [f"job:{old_job.id}"]

    store = Store()
    new = next(e for e in store.experiments() if e.id != old_experiment.id)
    assert {j.status for j in store.jobs(new.id)} == {JobStatus.SUCCEEDED}
    compared = json.loads(run_fto("compare", new.id, "--json").stdout)
    labels = {m["target"]["label"] for m in compared["models"]}
    assert {f"openai/{old_job.id}", "azure/fine-tuned", "nebius/fine-tuned"} <= labels
    assert len(openai_api.completions) == asked_before  # the old model's answers came from the store


def test_bad_targets_and_unmappable_models_are_one_line(old_experiment):
    result = run_fto("migrate", old_experiment.id, "--to", "azur")
    assert result.returncode != 0 and "unknown backend 'azur' for --to" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_fto("migrate", old_experiment.id, "--to", "azure", "--model", "azure=gpt-5-imaginary")
    assert result.returncode != 0 and "Azure OpenAI does not offer it" in result.stderr
    result = run_fto("migrate", "no-such-experiment", "--to", "azure")
    assert result.returncode != 0 and "no experiment or job file 'no-such-experiment'" in result.stderr
