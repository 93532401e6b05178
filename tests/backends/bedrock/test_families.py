"""The bedrock backend beyond Claude: Amazon Nova (bedrock-conversation-2024 records) and Meta Llama
(prompt/completion) customized through boto3 against moto, each with its own hyperparameter names and ranges,
queried through Bedrock's Converse API (a loopback server checked against botocore's model); and `--backend
anthropic` still running the job files written before the backend grew."""

from __future__ import annotations

import json

import pytest

from fto.orchestrator.store import Store
from fto.schemas import JobStatus
from tests.backends.bedrock.servers import BUCKET, ROLE
from tests.conftest import run_fto

pytestmark = pytest.mark.slow  # runs moto's server

PROVISIONED = "arn:aws:bedrock:us-west-2:123456789012:provisioned-model/fto-nova"


def _section(aws, converse, model: str, **extra):
    return {"model": model, "role_arn": ROLE, "s3_bucket": BUCKET, "endpoint_url": aws.url,
            "runtime_url": converse.base_url, "inference_model": PROVISIONED, "min_poll_interval": 0.2,
            "max_poll_interval": 0.5, **extra}  # fmt: skip


def _training_lines(aws, job_name: str) -> list[dict]:
    remote = aws.bedrock.get_model_customization_job(jobIdentifier=job_name)
    key = remote["trainingDataConfig"]["s3Uri"].removeprefix(f"s3://{BUCKET}/")
    return [json.loads(line) for line in aws.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().splitlines()]


def test_nova_end_to_end_through_converse(aws, converse, write_job, fto_home):
    section = _section(aws, converse, "amazon.nova-micro-v1:0:128k", learning_rate_warmup_steps=5)
    job_file = write_job({"hyperparameters": {"epochs": 3, "learning_rate": 5e-5},
                          "backends": {"bedrock": section}, "eval": {"max_examples": 20}})  # fmt: skip
    submitted = run_fto("submit", str(job_file), "--backend", "bedrock", timeout=120)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    store = Store()
    [job] = store.jobs()
    remote = aws.bedrock.get_model_customization_job(jobIdentifier=job.provider_job_id)
    assert remote["hyperParameters"] == {"epochCount": "3", "learningRate": "5e-05", "learningRateWarmupSteps": "5"}
    lines = _training_lines(aws, job.provider_job_id)
    assert lines[0]["schemaVersion"] == "bedrock-conversation-2024"
    assert lines[0]["system"][0]["text"].startswith("Answer with the animal's class")
    assert [m["role"] for m in lines[0]["messages"]] == ["user", "assistant"]
    assert lines[0]["messages"][1]["content"][0]["text"] in {"bird", "mammal", "fish", "reptile", "insect"}
    warnings = [e.message for e in store.events(job.id) if e.level == "warning"]
    assert any("hyperparameters.batch_size is not a Bedrock setting for Amazon Nova" in w for w in warnings)

    aws.job(job.provider_job_id).status = "Completed"
    assert run_fto("wait", job.id, timeout=120).returncode == 0
    converse.base_models.add("amazon.nova-micro-v1:0")  # on demand, without the customization variant
    training = "\n".join(json.dumps({"messages": [{"role": m["role"], "content": m["content"][0]["text"]}
                                                  for m in line["messages"]]}) for line in lines)  # fmt: skip
    converse.recall.learn(PROVISIONED, training.encode())
    converse.faults.add("POST", r"/model/.*/converse", "429")  # throttled once: retried, after Retry-After
    converse.faults.add("POST", r"/model/.*/converse", "503")
    evaluated = run_fto("eval", job.experiment_id, timeout=120)
    assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
    scores = {(r["target"], r["scorer"]): r["score"] for r in store.scores(job.experiment_id)}
    assert scores[("bedrock/fine-tuned", "exact_match")] >= 0.4
    assert scores[("bedrock/base", "exact_match")] <= 0.1
    assert {c["model"] for c in converse.calls} == {PROVISIONED, "amazon.nova-micro-v1:0"}
    assert not converse.faults.pending
    assert converse.calls[0]["body"]["system"][0]["text"].startswith("Answer with the animal's class")
    usage = json.loads((fto_home / "experiments" / job.experiment_id / "eval" / "usage.json").read_text())
    assert usage["bedrock/base"]["cost_usd"] > 0


def test_llama_gets_prompt_completion_records_with_the_system_prompt_folded_in(aws, converse, write_job):
    section = _section(aws, converse, "meta.llama3-1-8b-instruct-v1:0:128k")
    job_file = write_job({"hyperparameters": {"epochs": 2, "batch_size": 1, "learning_rate": 1e-4},
                          "backends": {"bedrock": section}})  # fmt: skip
    submitted = run_fto("submit", str(job_file), "--backend", "bedrock", timeout=120)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    [job] = Store().jobs()
    remote = aws.bedrock.get_model_customization_job(jobIdentifier=job.provider_job_id)
    assert remote["hyperParameters"] == {"epochCount": "2", "batchSize": "1", "learningRate": "0.0001"}
    first = _training_lines(aws, job.provider_job_id)[0]
    assert set(first) == {"prompt", "completion"}
    assert first["prompt"].startswith("Answer with the animal's class") and "\n\n" in first["prompt"]


@pytest.mark.parametrize(
    ("model", "hyperparameters", "message"),
    [
        ("amazon.nova-lite-v1:0:300k", {"epochs": 8}, "epochs = 8 is outside Bedrock's range 1–5 for Amazon Nova"),
        ("amazon.nova-lite-v1:0:300k", {"epochs": 2, "learning_rate": 3e-3}, "outside Bedrock's range 1e-06–0.0001"),
        ("meta.llama3-1-8b-instruct-v1:0:128k", {"epochs": 2}, "batch_size = 16 is outside Bedrock's range 1–1"),
        ("cohere.command-light-text-v14:7:4k", {}, "not a model family fto customizes on Bedrock"),
    ],
)
def test_each_familys_ranges_are_refused_before_upload(aws, converse, write_job, model, hyperparameters, message):
    job_file = write_job({"hyperparameters": hyperparameters, "backends": {"bedrock": _section(aws, converse, model)}})
    result = run_fto("submit", str(job_file), "--backend", "bedrock", timeout=120)
    assert result.returncode != 0 and message in result.stderr, result.stderr
    assert aws.keys() == []


def test_job_files_for_the_anthropic_backend_still_run(aws, converse, write_job):
    section = _section(aws, converse, "anthropic.claude-3-haiku-20240307-v1:0:200k")
    job_file = write_job({"backends": {"anthropic": section}})
    result = run_fto("submit", str(job_file), "--backend", "anthropic", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    [job] = Store().jobs()
    assert job.backend == "anthropic" and job.status != JobStatus.FAILED
    assert "messages" in _training_lines(aws, job.provider_job_id)[0]
