"""Bedrock reinforcement fine-tuning (Amazon Nova 2 Lite): the grader packaged as a Lambda function and created
through boto3 against moto's Lambda, the customization job's rftConfig checked against botocore's service model,
and the packaged function run as Lambda would run it, with nothing but its zip, scoring as `fto eval` does."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from fto.backends import registry
from fto.backends.bedrock.reward import package
from fto.orchestrator.errors import ConfigError, UnsupportedError
from fto.orchestrator.graders.run import grade_many, sample_of
from fto.schemas import BackendSection, JobSpec
from tests.backends.bedrock.servers import BUCKET, ROLE
from tests.backends.local.jobs import submit
from tests.conftest import ANIMALS
from tests.rewards import ANSWER, MULTI

NOVA = "amazon.nova-2-lite-v1:0:256k"
GRADER_ROLE = "arn:aws:iam::123456789012:role/fto-grader"


def _spec(grader: dict[str, Any], train: Path = ANIMALS, **rft: Any) -> JobSpec:
    return JobSpec.model_validate(
        {"name": "rft", "method": "rft", "data": {"train": str(train)}, "graders": [grader],
         "rft": {"grader": grader["name"], **rft}, "hyperparameters": {"epochs": 2, "batch_size": 16}}
    )  # fmt: skip


def _backend(endpoint: str = "http://127.0.0.1:9", **extra: Any) -> Any:
    section = {"model": NOVA, "role_arn": ROLE, "s3_bucket": BUCKET, "grader_role_arn": GRADER_ROLE,
               "endpoint_url": endpoint, **extra}  # fmt: skip
    return registry.create("bedrock", BackendSection.model_validate(section))


def _run_in_lambda(code: bytes, event: Any, folder: Path) -> Any:
    """The zip's handler in a bare interpreter (no site-packages: only the zip and the standard library)."""
    zipfile.ZipFile(io.BytesIO(code)).extractall(folder)
    script = (f"import json, sys; sys.path.insert(0, {str(folder)!r}); import lambda_function; "
              f"print(json.dumps(lambda_function.lambda_handler(json.load(sys.stdin), None)))")  # fmt: skip
    done = subprocess.run([sys.executable, "-S", "-E", "-c", script], input=json.dumps(event), capture_output=True,
                          text=True, timeout=60, cwd=folder)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.timeout(120)
def test_the_packaged_grader_scores_as_fto_eval_does_with_nothing_but_its_zip(tmp_path):
    spec = _spec(MULTI)
    rows = [json.loads(line) for line in ANIMALS.read_text().splitlines()[:6]]
    answers = ["mammal", "It is a bird, I think, most likely", "", "REPTILE", "fish", "no idea"]
    event = [{"id": f"s{k}", **{"reference": row["messages"][-1]["content"]},
              "messages": [*row["messages"][:-1], {"role": "assistant", "content": [{"text": answer}]}]}
             for k, (row, answer) in enumerate(zip(rows, answers, strict=True))]  # fmt: skip
    code = package(spec.graders[0])
    assert code == package(spec.graders[0])  # same grader, same bytes: a resubmitted job finds its function
    scored = _run_in_lambda(code, event, tmp_path / "lambda")

    items = [{"reference": row["messages"][-1]["content"], "messages": row["messages"][:-1]} for row in rows]
    expected = grade_many(spec.graders[0], [sample_of(a) for a in answers], items)
    assert [s["id"] for s in scored] == [e["id"] for e in event]
    assert [s["aggregate_reward_score"] for s in scored] == pytest.approx([g.value for g in expected])
    parts = {m["name"]: m["value"] for m in scored[1]["metrics_list"]}
    assert parts == pytest.approx({**expected[1].parts, "grader_error": 0.0})
    assert len({s["aggregate_reward_score"] for s in scored}) > 2  # a reward that tells answers apart


@pytest.mark.timeout(120)
def test_a_grader_that_fails_scores_zero_and_says_so(tmp_path):
    source = (
        "def grade(sample, item):\n"
        "    if sample['output_text'] == 'boom':\n"
        "        raise RuntimeError('x')\n"
        "    return float('nan') if sample['output_text'] == 'nan' else 1.0\n"
    )
    hostile = {"name": "nan", "type": "python", "source": source}
    event = [{"id": k, "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": k}]}
             for k in ("boom", "nan", "fine")]  # fmt: skip
    scored = _run_in_lambda(package(_spec(hostile).graders[0]), event, tmp_path / "lambda")
    assert [s["aggregate_reward_score"] for s in scored] == [0.0, 0.0, 1.0]
    errors = [next(m["value"] for m in s["metrics_list"] if m["name"] == "grader_error") for s in scored]
    assert errors == [1.0, 1.0, 0.0]
    assert "RuntimeError" in scored[0]["error"] and "nan" in scored[1]["error"]


def _ranges_errors(shape: Any, value: Any, path: str = "") -> list[str]:
    """What botocore's own validation leaves out: the service model's maximums (and minimums of numbers)."""
    found = []
    if shape.type_name == "structure":
        for name, member in shape.members.items():
            if name in value:
                found += _ranges_errors(member, value[name], f"{path}.{name}")
    elif shape.type_name in ("integer", "float", "double", "long"):
        low, high = shape.metadata.get("min"), shape.metadata.get("max")
        if (low is not None and value < low) or (high is not None and value > high):
            found.append(f"{path} = {value} outside {low}..{high}")
    elif shape.type_name == "string" and shape.enum and value not in shape.enum:
        found.append(f"{path} = {value!r} not in {shape.enum}")
    return found


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_rft_job_on_moto_creates_the_grader_function_and_an_rft_customization_job(aws, tmp_path):
    import boto3

    iam = boto3.client("iam", region_name="us-west-2", endpoint_url=aws.url)
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service":
             "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}  # fmt: skip
    iam.create_role(RoleName="fto-grader", AssumeRolePolicyDocument=json.dumps(trust))
    spec = _spec(MULTI, samples_per_prompt=8, max_new_tokens=64, reasoning_effort="low")
    backend = _backend(aws.url)
    sent: list[dict[str, Any]] = []
    client = backend._aws("bedrock")
    client.meta.events.register("provide-client-params.bedrock.CreateModelCustomizationJob",
                                lambda params, **_: sent.append(params))  # fmt: skip

    provider_id = submit(backend, spec, tmp_path / "prepared", "job-rft")

    # the job: REINFORCEMENT_FINE_TUNING with the Lambda grader and RFT's hyperparameters, as the service model says
    (request,) = sent
    operation = client.meta.service_model.operation_model("CreateModelCustomizationJob")
    assert _ranges_errors(operation.input_shape, request) == []
    rft = request["customizationConfig"]["rftConfig"]
    assert request["customizationType"] == "REINFORCEMENT_FINE_TUNING" and "hyperParameters" not in request
    assert rft["hyperParameters"] == {"epochCount": 2, "batchSize": 16, "trainingSamplePerPrompt": 8,
                                      "inferenceMaxTokens": 64, "reasoningEffort": "low"}  # fmt: skip
    remote = aws.bedrock.get_model_customization_job(jobIdentifier=provider_id)
    assert remote["customizationType"] == "REINFORCEMENT_FINE_TUNING"

    # the grader function moto holds is the package of this grader, runnable by Bedrock
    lam = boto3.client("lambda", region_name="us-west-2", endpoint_url=aws.url)
    arn = rft["graderConfig"]["lambdaGrader"]["lambdaArn"]
    config = lam.get_function(FunctionName=arn)["Configuration"]
    assert (config["Runtime"], config["Handler"], config["Role"]) == ("python3.12", "lambda_function.lambda_handler",
                                                                      GRADER_ROLE)  # fmt: skip
    policy = json.loads(lam.get_policy(FunctionName=arn)["Policy"])
    assert policy["Statement"][0]["Principal"] == {"Service": "bedrock.amazonaws.com"}
    from moto.backends import get_backend

    stored = get_backend("lambda")["123456789012"]["us-west-2"].get_function(arn)
    assert stored.code_bytes == package(spec.graders[0])

    # the data the grader's function reads: prompts ending in the user's turn, the reference as a field
    key = request["trainingDataConfig"]["s3Uri"].removeprefix(f"s3://{BUCKET}/")
    first = json.loads(aws.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode().splitlines()[0])
    assert first["messages"][-1]["role"] == "user" and first["reference"]

    # submitted again (a resumed submission): the same function, found by its content-derived name
    submit(backend, spec, tmp_path / "again", "job-rft-again")
    assert sent[1]["customizationConfig"]["rftConfig"]["graderConfig"]["lambdaGrader"]["lambdaArn"] == arn
    assert len(lam.list_functions()["Functions"]) == 1


@pytest.mark.parametrize(
    ("grader", "extra", "rft", "message"),
    [
        (
            {**ANSWER, "type": "text_similarity", "evaluation_metric": "bleu", "operation": None},
            {},
            {},
            "cannot run grader 'answer' (text_similarity) as an RFT reward",
        ),
        (ANSWER, {"model": "anthropic.claude-3-haiku-20240307-v1:0:200k"}, {}, f"runs RFT on {NOVA}, not anthropic"),
        (ANSWER, {}, {"samples_per_prompt": 32}, "rft.samples_per_prompt = 32 is outside Bedrock's RFT range 2–16"),
        (ANSWER, {"grader_role_arn": None}, {}, "Bedrock needs grader_role_arn"),
    ],
    ids=["text_similarity", "claude", "samples", "role"],
)
def test_what_bedrock_rft_cannot_do_is_refused_before_any_upload(aws_env, grader, extra, rft, message):
    grader = {k: v for k, v in grader.items() if v is not None}
    with pytest.raises((UnsupportedError, ConfigError)) as refused:
        _backend(**extra).check(_spec(grader, **rft))
    assert message in str(refused.value)
