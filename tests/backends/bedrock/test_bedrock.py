"""The anthropic backend end to end through boto3 against moto's S3 + Bedrock, and the anthropic SDK against a
loopback Messages API: submit, Bedrock's JSONL in S3, hyperparameters as strings, statuses, step metrics, eval of
the base and custom models, cancel; and the refusals that must come before anything is uploaded."""

from __future__ import annotations

import json

import pytest

from fto.orchestrator.store import Store
from fto.schemas import JobStatus
from tests.backends.bedrock.servers import BUCKET, ROLE
from tests.conftest import ANIMALS, SHARED_DATA, run_fto

pytestmark = pytest.mark.slow  # runs moto's server

PROVISIONED = "arn:aws:bedrock:us-west-2:123456789012:provisioned-model/fto-animals"


def _section(aws, messages, **extra):
    return {
        "model": "anthropic.claude-3-haiku-20240307-v1:0:200k",
        "role_arn": ROLE,
        "s3_bucket": BUCKET,
        "endpoint_url": aws.url,
        "runtime_url": messages.url,
        "anthropic_base_url": messages.url,
        "inference_model": PROVISIONED,
        "min_poll_interval": 0.2,
        "max_poll_interval": 0.5,
        **extra,
    }


def _answers() -> dict[str, str]:
    rows = [json.loads(line)["messages"] for line in ANIMALS.read_text().splitlines()]
    return {m[1]["content"]: m[2]["content"] for m in rows}


def test_claude_on_bedrock_end_to_end(aws, messages, write_job, fto_home):
    job_file = write_job(
        {"backends": {"anthropic": _section(aws, messages, early_stopping_patience=3)}, "eval": {"max_examples": 20}}
    )
    submitted = run_fto("submit", str(job_file), "--backend", "anthropic", timeout=120)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    store = Store()
    [job] = store.jobs()
    assert job.provider_job_id == f"fto-{job.id}"

    # what Bedrock received: Claude JSONL in S3, hyperparameters as strings, our id in the job name and tags
    remote = aws.bedrock.get_model_customization_job(jobIdentifier=job.provider_job_id)
    assert remote["hyperParameters"] == {"epochCount": "8", "batchSize": "16", "earlyStoppingPatience": "3"}
    assert remote["baseModelArn"].endswith("anthropic.claude-3-haiku-20240307-v1:0:200k")
    train_key = remote["trainingDataConfig"]["s3Uri"].removeprefix(f"s3://{BUCKET}/")
    lines = aws.s3.get_object(Bucket=BUCKET, Key=train_key)["Body"].read().decode().splitlines()
    first = json.loads(lines[0])
    assert set(first) == {"system", "messages"} and [m["role"] for m in first["messages"]] == ["user", "assistant"]
    assert remote["validationDataConfig"]["validators"][0]["s3Uri"].endswith("validation.jsonl")
    assert any(
        "hyperparameters.learning_rate is not a Bedrock setting for Claude" in e.message for e in store.events(job.id)
    )

    # Bedrock finishes the job and writes its step-wise losses to the output folder
    output = remote["outputDataConfig"]["s3Uri"].removeprefix(f"s3://{BUCKET}/")
    csv = "step_number,epoch_number,training_loss\n" + "".join(f"{s},{(s - 1) // 5},{2.0 / s}\n" for s in range(1, 11))
    aws.s3.put_object(Bucket=BUCKET, Key=f"{output}training_artifacts/step_wise_training_metrics.csv", Body=csv)
    aws.job(job.provider_job_id).status = "Completed"
    waited = run_fto("wait", job.id, timeout=120)
    assert waited.returncode == 0, waited.stdout + waited.stderr
    done = store.job(job.id)
    assert done.status == JobStatus.SUCCEEDED
    assert done.fine_tuned_model == remote["outputModelArn"]
    assert [m.step for m in store.metrics(job.id)] == list(range(1, 11))
    assert store.metrics(job.id)[-1].loss == pytest.approx(0.2)

    # eval: the base model on Bedrock on demand, the custom model through its provisioned throughput
    answers = _answers()
    messages.answers[PROVISIONED] = lambda q: answers.get(q, "?")
    evaluated = run_fto("eval", job.experiment_id, timeout=120)
    assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
    scores = {(r["target"], r["scorer"]): r["score"] for r in store.scores(job.experiment_id)}
    assert scores[("anthropic/fine-tuned", "exact_match")] == 1.0
    assert scores[("anthropic/base", "exact_match")] == 0.0
    called = {c["model"] for c in messages.calls}
    assert called == {PROVISIONED, "anthropic.claude-3-haiku-20240307-v1:0"}
    assert all(c["via"] == "bedrock" and c["headers"]["authorization"].startswith("AWS4-HMAC-SHA256") for c in
               messages.calls)  # fmt: skip
    assert messages.calls[0]["body"]["system"].startswith("Answer with the animal's class")
    usage = json.loads((fto_home / "experiments" / job.experiment_id / "eval" / "usage.json").read_text())
    assert usage["anthropic/base"]["input_tokens"] > 0 and usage["anthropic/base"]["cost_usd"] > 0

    # a base Claude model by its Anthropic API name goes to the Anthropic API, with the key from the environment
    direct = run_fto("eval", job.experiment_id, "--target", "anthropic:claude-3-5-haiku-latest", timeout=120)
    assert direct.returncode == 0, direct.stdout + direct.stderr
    last = messages.calls[-1]
    assert last["via"] == "anthropic" and last["model"] == "claude-3-5-haiku-latest"
    sent = last["headers"].get("x-api-key") or last["headers"].get("authorization", "").removeprefix("Bearer ")
    assert sent == "sk-ant-test-never-shown"  # (this SDK release sends it as a bearer token)
    assert "sk-ant-test" not in direct.stdout + direct.stderr


def test_cancel_stops_the_customization_job(aws, messages, write_job):
    job_file = write_job({"backends": {"anthropic": _section(aws, messages)}})
    assert run_fto("submit", str(job_file), "--backend", "anthropic", timeout=120).returncode == 0
    [job] = Store().jobs()
    assert job.provider_job_id
    assert run_fto("cancel", job.id, timeout=60).returncode == 0
    assert aws.job(job.provider_job_id).status == "Stopped"
    run_fto("wait", job.id, timeout=60)
    assert Store().job(job.id).status == JobStatus.CANCELLED


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"method": "dpo", "data": {"train": str(SHARED_DATA / "hh-rlhf" / "harmless-base_test.jsonl.gz")}},
            "Bedrock fine-tunes Claude with supervised examples (method: sft)",
        ),
        ({"hyperparameters": {"epochs": 12}}, "hyperparameters.epochs = 12 is outside Bedrock's range 1–10"),
        ({"hyperparameters": {"batch_size": 2}}, "hyperparameters.batch_size = 2 is outside Bedrock's range 4–256"),
        ({"hyperparameters": {"learning_rate_multiplier": 3.0}}, "outside Bedrock's range 0.1–2"),
        ({"backends": {"anthropic": {"role_arn": None}}}, "Bedrock needs role_arn"),
        ({"backends": {"anthropic": {"max_records": 100}}}, "at most 100 training and validation records"),
    ],
)
def test_what_bedrock_cannot_do_is_refused_before_any_upload(aws, messages, write_job, overrides, message):
    base = {"backends": {"anthropic": _section(aws, messages)}}
    backends = overrides.pop("backends", None)
    if backends:
        base["backends"]["anthropic"].update(backends["anthropic"])
    job_file = write_job({**base, **overrides})
    result = run_fto("submit", str(job_file), "--backend", "anthropic", timeout=120)
    shown = result.stdout + result.stderr
    assert message in shown and "Traceback" not in shown
    assert aws.keys() == []  # nothing reached S3
    assert aws.bedrock.list_model_customization_jobs()["modelCustomizationJobSummaries"] == []
