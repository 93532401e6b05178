"""The `azure` backend through the openai SDK's AzureOpenAI client against a loopback Azure OpenAI resource whose
every request is checked against Azure's published REST specs (the v1 data plane and Resource Manager's
deployments): SFT end to end with the deployment eval needs (created, called, deleted), key and Entra ID auth, DPO
and RFT in Azure's shapes, faults, a lost create answer, `fto cancel` freeing a kept deployment."""

from __future__ import annotations

import pytest

from fto.backends import registry
from fto.backends.azure import AzureBackend
from fto.orchestrator.errors import ConfigError, UnsupportedError
from fto.orchestrator.store import Store
from fto.schemas import BackendSection, JobSpec, JobStatus
from tests.backends.conftest import AZURE_KEY, AZURE_MANAGEMENT_TOKEN, AZURE_TOKEN
from tests.backends.local.jobs import submit, wait_for
from tests.conftest import ANIMALS, run_fto
from tests.preferences import write_preferences
from tests.rewards import ANSWER, SHORT

pytestmark = pytest.mark.timeout(300)
TUNED = "gpt-4.1-mini-2025-04-14"
BASES = {TUNED, "gpt-4o-mini-2024-07-18"}  # the resource's own deployments


def _backend(api, **options):
    return registry.create("azure", BackendSection.model_validate({**api.section, **options}))


def _spec(**fields) -> JobSpec:
    return JobSpec.model_validate({"name": "azure", "data": {"train": str(ANIMALS)}, **fields})


@pytest.mark.slow
def test_run_end_to_end_deploys_for_eval_and_deletes_after(azure_api, write_job, fto_home):
    job_file = write_job({"backends": {"azure": azure_api.section}, "eval": {"scorers": ["exact_match"],
                                                                             "max_examples": 12}})  # fmt: skip
    result = run_fto("run", str(job_file), "--backend", "azure", timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr

    store = Store()
    [experiment] = store.experiments()
    [job] = store.jobs(experiment.id)
    assert job.status == JobStatus.SUCCEEDED and job.fine_tuned_model.startswith(f"{TUNED}.ft-")
    [created] = azure_api.jobs.values()
    assert created.request["metadata"]["fto_job_id"] == job.id
    assert created.request["method"]["type"] == "supervised"
    [upload] = [f for f in azure_api.files.values() if f["content"]][:1]
    assert upload["fields"]["expires_after"] == {"anchor": "created_at", "seconds": 30 * 24 * 3600}
    messages = [e.message for e in store.events(job.id)]
    cost = next(m for m in messages if "while the deployment exists" in m)
    assert "$1.70/hour" in cost and "deleted when eval is done" in cost  # said when submitted, before any deployment
    deployment = AzureBackend.deployment_name(job.fine_tuned_model)
    assert azure_api.deleted == [deployment] and set(azure_api.deployments) == BASES  # created, deleted after
    assert any(m.startswith(f"deleted Azure deployment {deployment}") for m in messages)
    assert set(azure_api.credentials) == {"key"}

    scores = {(row["target"], row["scorer"]): row["score"] for row in store.scores(experiment.id)}
    assert scores[("azure/fine-tuned", "exact_match")] >= 0.5  # the deployed fine-tune recalls what it was taught
    assert ("azure/base", "exact_match") in scores
    assert [c["model"] for c in azure_api.completions].count(TUNED) == 12  # the base answered by its deployment
    for path in fto_home.rglob("*"):  # the key and tokens reached Azure and nowhere else
        secret = [AZURE_KEY.encode(), AZURE_MANAGEMENT_TOKEN.encode()]
        assert not path.is_file() or not any(s in path.read_bytes() for s in secret), path


def test_entra_id_token_when_no_key_is_set(azure_api, tmp_path, monkeypatch):
    monkeypatch.delenv("AZURE_OPENAI_API_KEY")
    monkeypatch.setenv("AZURE_OPENAI_AD_TOKEN", AZURE_TOKEN)
    backend = _backend(azure_api)
    job_id = submit(backend, _spec(hyperparameters={"epochs": 2}), tmp_path, "job-entra")
    assert wait_for(backend, job_id).status == JobStatus.SUCCEEDED
    assert set(azure_api.credentials) == {"entra"}  # Authorization: Bearer, never a key


def test_no_credential_is_one_clear_line(azure_api, monkeypatch):
    monkeypatch.delenv("AZURE_OPENAI_API_KEY")
    monkeypatch.setitem(__import__("sys").modules, "azure.identity", None)  # azure-identity not installed
    with pytest.raises(ConfigError, match="set AZURE_OPENAI_AD_TOKEN to an Entra ID token"):
        _backend(azure_api).check(_spec())
    assert not azure_api.files


def test_dpo_and_rft_in_azures_shapes(azure_api, tmp_path):
    prefs = write_preferences(tmp_path / "prefs.jsonl")
    dpo = _spec(method="dpo", data={"train": str(prefs)}, hyperparameters={"beta": 0.2, "epochs": 1})
    job_id = submit(_backend(azure_api), dpo, tmp_path / "dpo", "job-dpo")
    assert azure_api.jobs[job_id].request["method"]["dpo"]["hyperparameters"]["beta"] == 0.2

    rft = _spec(method="rft", graders=[ANSWER], rft={"grader": "answer", "reasoning_effort": "low"},
                hyperparameters={"epochs": 1})  # fmt: skip
    backend = _backend(azure_api, model="o4-mini-2025-04-16")
    job_id = submit(backend, rft, tmp_path / "rft", "job-rft")
    sent = azure_api.jobs[job_id].request["method"]  # valid under AzureFineTuneReinforcementMethod (else a violation)
    assert sent["type"] == "reinforcement" and sent["reinforcement"]["grader"]["type"] == "string_check"
    assert sent["reinforcement"]["hyperparameters"]["reasoning_effort"] == "low"


def test_graders_azure_cannot_run_are_refused_before_upload(azure_api):
    spec = _spec(method="rft", graders=[SHORT], rft={"grader": "short"})
    with pytest.raises(UnsupportedError, match="python"):
        _backend(azure_api, model="o4-mini-2025-04-16").check(spec)
    assert not azure_api.files


def test_faults_are_retried_and_a_lost_create_makes_exactly_one_job(azure_api, write_job, fto_home):
    azure_api.faults.add("POST", "/openai/v1/files", "503")
    azure_api.faults.add("POST", "/openai/v1/fine_tuning/jobs", "429")
    azure_api.faults.add("POST", "/openai/v1/fine_tuning/jobs", "lost")  # created, but the answer never arrives
    job_file = write_job({"backends": {"azure": azure_api.section}, "eval": None})
    result = run_fto("run", str(job_file), "--backend", "azure", timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(azure_api.jobs) == 1  # found again by our id in its metadata, never submitted twice
    assert [f.kind for f in azure_api.faults.seen] == ["503", "429", "lost"]


def test_cancel_of_a_finished_job_deletes_its_kept_deployment(azure_api, write_job, fto_home):
    section = {**azure_api.section, "keep_deployment": True}
    job_file = write_job({"backends": {"azure": section}, "eval": {"scorers": ["exact_match"], "max_examples": 4}})
    assert run_fto("run", str(job_file), "--backend", "azure", timeout=240).returncode == 0
    [deployment] = set(azure_api.deployments) - BASES  # kept after eval, as asked
    [job] = Store().jobs(Store().experiments()[0].id)
    result = run_fto("cancel", job.id)
    assert result.returncode == 0, result.stderr
    assert f"deleted Azure deployment {deployment}" in result.stdout
    assert set(azure_api.deployments) == BASES and azure_api.deleted == [deployment]


def test_stats_for_azure_show_its_limits_and_prices(fto_home):
    result = run_fto("data", "stats", str(ANIMALS), "--for", "azure")
    assert result.returncode == 0, result.stderr
    assert "Azure OpenAI" in result.stdout and "gpt-4.1-mini-2025-04-14" in result.stdout
    assert "$5.0/1M tokens" in result.stdout and "hosting: $1.70/hour" in result.stdout
