"""The `sagemaker` backend through boto3 against a loopback SageMaker AI whose every request and answer is checked
against botocore's service model, with data in moto's S3: serverless customization end to end with eval on the
endpoints, DPO, LoRA or full, limits refused before upload, faults and a lost create answer."""

from __future__ import annotations

import pytest

from fto.backends import registry
from fto.orchestrator.errors import ConfigError, UnsupportedError
from fto.orchestrator.store import Store
from fto.schemas import BackendSection, JobSpec, JobStatus
from tests.backends.local.jobs import submit
from tests.conftest import ANIMALS, run_fto
from tests.preferences import write_preferences

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _backend(api, **options):
    return registry.create("sagemaker", BackendSection.model_validate({**api.section, **options}))


def test_run_end_to_end_with_eval_on_the_endpoints(sagemaker_api, write_job, fto_home):
    job_file = write_job({"backends": {"sagemaker": sagemaker_api.section},
                          "hyperparameters": {"epochs": 2, "batch_size": 16, "learning_rate": 1e-4},
                          "eval": {"scorers": ["exact_match"], "max_examples": 10}})  # fmt: skip
    result = run_fto("run", str(job_file), "--backend", "sagemaker", timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    store = Store()
    [experiment] = store.experiments()
    [job] = store.jobs(experiment.id)
    assert job.status == JobStatus.SUCCEEDED
    assert job.fine_tuned_model == "arn:aws:sagemaker:us-west-2:123456789012:model-package/fto-tuned/1"
    sent = sagemaker_api.requests_seen[f"fto-{job.id}"]
    assert sent["ServerlessJobConfig"] == {
        "BaseModelArn": "arn:aws:sagemaker:us-west-2:aws:hub-content/SageMakerPublicHub/Model/"
        "meta-textgeneration-llama-3-1-8b-instruct",
        "JobType": "FineTuning", "CustomizationTechnique": "SFT", "AcceptEula": False, "Peft": "LORA",
    }  # fmt: skip
    assert sent["HyperParameters"] == {"max_epochs": "2", "global_batch_size": "16", "learning_rate": "0.0001"}
    assert [c["ChannelName"] for c in sent["InputDataConfig"]] == ["train", "validation"]
    messages = [e.message for e in store.events(job.id)]
    assert messages.count("Training") == 1 and "Completed" in messages  # each transition once
    scores = {(row["target"], row["scorer"]): row["score"] for row in store.scores(experiment.id)}
    assert scores[("sagemaker/fine-tuned", "exact_match")] >= 0.5 > scores[("sagemaker/base", "exact_match")]


def test_dpo_and_full_training(sagemaker_api, tmp_path):
    prefs = write_preferences(tmp_path / "prefs.jsonl")
    spec = JobSpec.model_validate({"name": "p", "method": "dpo", "data": {"train": str(prefs)}})
    name = submit(_backend(sagemaker_api, peft="full", sequence_length="8K"), spec, tmp_path, "job-dpo")
    sent = sagemaker_api.requests_seen[name]["ServerlessJobConfig"]
    assert sent["CustomizationTechnique"] == "DPO" and "Peft" not in sent and sent["SequenceLength"] == "8K"


@pytest.mark.parametrize(
    ("options", "hyperparameters", "error", "message"),
    [
        ({"role_arn": None}, {}, ConfigError, "SageMaker needs role_arn"),
        ({"model": "meta-textgeneration-llama-3-3-70b-instruct", "peft": "full"}, {}, UnsupportedError, "LoRA only"),
        ({}, {"epochs": 30}, UnsupportedError, "epochs = 30 is outside SageMaker's range 1–10"),
    ],
)
def test_refused_before_upload(sagemaker_api, aws, options, hyperparameters, error, message):
    spec = JobSpec.model_validate({"name": "x", "data": {"train": str(ANIMALS)}, "hyperparameters": hyperparameters})
    section = {k: v for k, v in {**sagemaker_api.section, **options}.items() if v is not None}
    with pytest.raises(error, match=message):
        registry.create("sagemaker", BackendSection.model_validate(section)).check(spec)
    assert not aws.keys() and not sagemaker_api.jobs


def test_faults_and_a_lost_create_make_exactly_one_job(sagemaker_api, write_job, fto_home):
    sagemaker_api.faults.add("POST", "/", "429")
    sagemaker_api.faults.add("POST", "/", "lost")  # the create is done; its answer never arrives
    sagemaker_api.faults.add("POST", "/", "503")  # the describe that finds it, once
    job_file = write_job({"backends": {"sagemaker": sagemaker_api.section}, "eval": None})
    result = run_fto("run", str(job_file), "--backend", "sagemaker", timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(sagemaker_api.jobs) == 1
    assert [f.kind for f in sagemaker_api.faults.seen] == ["429", "lost", "503"]


def test_cancel_stops_the_training_job(sagemaker_api, tmp_path):
    backend = _backend(sagemaker_api)
    spec = JobSpec.model_validate({"name": "c", "data": {"train": str(ANIMALS)}})
    name = submit(backend, spec, tmp_path, "job-cancel")
    backend.cancel(name)
    assert backend.get(name).status == JobStatus.CANCELLED
    assert backend.find("job-cancel") == name and backend.find("job-never") is None


def test_stats_for_sagemaker(fto_home):
    result = run_fto("data", "stats", str(ANIMALS), "--for", "sagemaker")
    assert result.returncode == 0, result.stderr
    assert "Amazon SageMaker AI" in result.stdout and "8,192-token limit" in result.stdout
