"""A stateful SageMaker AI API (serverless training jobs) and runtime on 127.0.0.1 for the `sagemaker` backend's
tests, its data read from moto's S3.

moto does not emulate serverless customization (its CreateTrainingJob needs an AlgorithmSpecification), so this
server answers SageMaker's JSON protocol itself: every request is validated against botocore's own service model
(the shapes boto3 also checks before sending), and every answer against the operation's output shape, with its
required members. Requests must be SigV4-signed. Jobs walk SageMaker's statuses, one secondary status per describe:
Starting → Downloading → Training → Uploading → Completed (with the tuned model's package ARN), or Stopping →
Stopped. The runtime answers `invocations` on the endpoints the test names, in the OpenAI chat shape.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.session
from botocore.validate import ParamValidator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.loopback import Provider, Recall

MODEL = botocore.session.get_session().get_service_model("sagemaker")
STEPS = ["Starting", "Downloading", "Training", "Uploading", "Completed"]


def problems(shape: Any, value: Any) -> list[str]:
    """What botocore's validator (and the shape's required members) find wrong with `value`."""
    report = ParamValidator().validate(value, shape)
    return [line.strip() for line in report.generate_report().splitlines()[1:]] if report.has_errors() else []


class SageMaker(Provider):
    """CreateTrainingJob / DescribeTrainingJob / StopTrainingJob, and InvokeEndpoint."""

    def __init__(self, s3_url: str):
        super().__init__()
        self.s3 = boto3.client("s3", region_name="us-west-2", endpoint_url=s3_url)
        self.jobs: dict[str, dict[str, Any]] = {}
        self.requests_seen: dict[str, dict[str, Any]] = {}
        self.recall = Recall()
        self.endpoints: dict[str, str] = {}  # endpoint name → model package ARN it serves ("" for the base)
        self.invocations = 0

    def error(self, status: int, message: str, code: str = "ValidationException") -> Response:
        code = {429: "ThrottlingException", 503: "ServiceUnavailable"}.get(status, code)
        return JSONResponse({"__type": code, "message": message}, status_code=status)

    async def handle(self, request: Request) -> Response:
        if not request.headers.get("authorization", "").startswith("AWS4-HMAC-SHA256"):
            return self.reject(403, "request not signed with SigV4")
        if request.url.path.startswith("/endpoints/"):
            return await self.invoke(request)
        target = request.headers.get("x-amz-target", "")
        operation = target.removeprefix("SageMaker.")
        if operation not in ("CreateTrainingJob", "DescribeTrainingJob", "StopTrainingJob"):
            return self.reject(400, f"operation {target!r} is not served here")
        body = json.loads(await request.body() or b"{}")
        found = problems(MODEL.operation_model(operation).input_shape, body)
        if found:
            return self.reject(400, f"{operation}: {found}")
        return getattr(self, operation)(body)

    def answer(self, operation: str, body: dict[str, Any]) -> Response:
        shape = MODEL.operation_model(operation).output_shape  # None: the operation answers nothing
        found = problems(shape, body) if shape is not None else [f"{k}: not in the answer" for k in body]
        if found:
            self.violations.append(f"answer to {operation}: {found}")
        return JSONResponse(body)

    def CreateTrainingJob(self, body: dict[str, Any]) -> Response:
        name = body["TrainingJobName"]
        if name in self.jobs:
            return self.error(400, f"Training job names must be unique: {name} exists", "ResourceInUse")
        if "ServerlessJobConfig" not in body or "ModelPackageConfig" not in body:
            return self.reject(400, "a serverless customization job needs ServerlessJobConfig and ModelPackageConfig")
        training = self.read(body["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"])
        arn = f"arn:aws:sagemaker:us-west-2:123456789012:training-job/{name}"
        self.requests_seen[name] = body
        self.jobs[name] = {"step": 0, "training": training, "arn": arn, "created": time.time(), "stopped": False}
        return self.answer("CreateTrainingJob", {"TrainingJobArn": arn})

    def read(self, uri: str) -> bytes:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        return bytes(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    def DescribeTrainingJob(self, body: dict[str, Any]) -> Response:
        name = body["TrainingJobName"]
        job = self.jobs.get(name)
        if job is None:
            return self.error(400, f"Requested resource not found: {name}", "ResourceNotFound")
        request = self.requests_seen[name]
        if job["stopped"]:
            status, secondary = "Stopped", "Stopped"
        else:
            job["step"] = min(job["step"] + 1, len(STEPS) - 1)
            secondary = STEPS[job["step"]]
            status = "Completed" if secondary == "Completed" else "InProgress"
        stamp = datetime.fromtimestamp(job["created"], UTC).isoformat()
        shown = STEPS[: job["step"] + 1] + (["Stopped"] if job["stopped"] else [])
        answer: dict[str, Any] = {
            "TrainingJobName": name, "TrainingJobArn": job["arn"], "TrainingJobStatus": status,
            "SecondaryStatus": secondary, "CreationTime": stamp,
            "ModelArtifacts": {"S3ModelArtifacts": f"{request['OutputDataConfig']['S3OutputPath']}{name}/output"},
            "StoppingCondition": {"MaxRuntimeInSeconds": 86400},
            "SecondaryStatusTransitions": [{"Status": s, "StartTime": stamp} for s in shown],
            "ServerlessJobConfig": request["ServerlessJobConfig"],
            "ModelPackageConfig": request["ModelPackageConfig"],
        }  # fmt: skip
        if status == "Completed":
            package = f"{request['ModelPackageConfig']['ModelPackageGroupArn'].replace('-group/', '/')}/1"
            answer["OutputModelPackageArn"] = package
            self.recall.learn(package, job["training"])
        return self.answer("DescribeTrainingJob", answer)

    def StopTrainingJob(self, body: dict[str, Any]) -> Response:
        job = self.jobs.get(body["TrainingJobName"])
        if job is None:
            return self.error(400, "Requested resource not found", "ResourceNotFound")
        job["stopped"] = True
        return self.answer("StopTrainingJob", {})

    async def invoke(self, request: Request) -> Response:
        name = request.url.path.split("/")[2]
        if name not in self.endpoints:
            return self.error(400, f"Endpoint {name} not found", "ValidationError")
        body = json.loads(await request.body())
        if set(body) - {"messages", "max_tokens", "temperature"} or not body.get("messages"):
            return self.reject(400, f"not a chat request: {sorted(body)}")
        self.invocations += 1
        prompt = next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), "")
        text = self.recall.answer(self.endpoints[name], str(prompt))
        return JSONResponse({"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
                             "usage": {"prompt_tokens": len(str(prompt).split()),
                                       "completion_tokens": len(text.split())}})  # fmt: skip
