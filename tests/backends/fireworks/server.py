"""A stateful Fireworks AI on 127.0.0.1 for the `fireworks` backend's tests.

Fireworks publishes its API through its SDK: every request body fto's SDK sends is checked against the SDK's own
params types, every answer against its response models (tests/sdk_models.py); what Fireworks would refuse is
answered as Fireworks would and recorded as a violation, which fails the test. Jobs walk Fireworks' states, one
step per read: CREATING → VALIDATING → RUNNING (progress 33, 67, 100) → WRITING_RESULTS → COMPLETED, or FAILED,
or CANCELLING → CANCELLED (and back to RUNNING on resume).
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from fireworks.types import (
    Dataset,
    DatasetGetUploadEndpointResponse,
    DatasetUploadResponse,
    DpoJob,
    EvaluatorCreateResponse,
    EvaluatorGetResponse,
    ReinforcementFineTuningJob,
    SupervisedFineTuningJob,
    dataset_create_params,
    dataset_get_upload_endpoint_params,
    dpo_job_create_params,
    evaluator_create_params,
    reinforcement_fine_tuning_job_create_params,
    supervised_fine_tuning_job_create_params,
)
from fireworks.types.chat import completion_create_params, completion_create_response
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.loopback import Provider, Recall
from tests.sdk_models import errors

PROGRESS = (33, 67, 100)
CREATE_PARAMS = {
    "supervisedFineTuningJobs": (supervised_fine_tuning_job_create_params.SupervisedFineTuningJobCreateParams,
                                 SupervisedFineTuningJob, "supervisedFineTuningJobId"),
    "dpoJobs": (dpo_job_create_params.DpoJobCreateParams, DpoJob, "dpoJobId"),
    "reinforcementFineTuningJobs": (reinforcement_fine_tuning_job_create_params.ReinforcementFineTuningJobCreateParams,
                                    ReinforcementFineTuningJob, "reinforcementFineTuningJobId"),
}  # fmt: skip
PATH_AND_QUERY = frozenset({"account_id", "supervised_fine_tuning_job_id", "dpo_job_id", "dataset_id_path",
                            "reinforcement_fine_tuning_job_id"})  # fmt: skip


def stamp() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class Fireworks(Provider):
    """Datasets, supervised and DPO jobs, and chat on deployments, as Fireworks answers them."""

    def __init__(
        self,
        key: str,
        account: str = "acct",
        models: tuple[str, ...] = ("accounts/fireworks/models/llama-v3p1-8b-instruct",),
    ):
        super().__init__()
        self.key = key
        self.account = account
        self.models = set(models)
        self.datasets: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}  # name → {"kind", "body", "state", "tick", ...}
        self.deployments = {f"accounts/{account}/deployments/d1"}
        self.recall = Recall()
        self.fail_next_job: str | None = None
        self.uploaded: list[str] = []  # how each dataset's bytes arrived: "request" or "signed-url"
        self.evaluators: dict[str, dict[str, Any]] = {}  # id → the evaluator as created

    def error(self, status: int, message: str) -> Response:
        code = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED"}
        return JSONResponse({"error": {"code": code.get(status, "INTERNAL"), "message": message}}, status_code=status)

    def answer(self, model: Any, body: dict[str, Any], where: str) -> Response:
        problems = errors(model, body)
        if problems:
            self.violations.append(f"answer to {where}: {problems}")
        return JSONResponse(body)

    def body_errors(self, params: Any, body: Any, where: str, ignore: frozenset[str] = PATH_AND_QUERY) -> None:
        problems = errors(params, body, ignore=ignore)
        if problems:
            raise ValueError(f"{where}: {problems}")

    async def handle(self, request: Request) -> Response:
        path, method = request.url.path, request.method
        where = f"{method} {path}"
        if path.startswith("/signed/"):  # storage behind a signed URL: no API key, by design
            name = path.removeprefix("/signed/")
            self.datasets[name]["content"] = await request.body()
            self.uploaded.append("signed-url")
            return Response(status_code=200)
        if request.headers.get("authorization") != f"Bearer {self.key}":
            return self.reject(401, f"{where}: no or wrong API key")
        try:
            if path == "/v1/chat/completions" and method == "POST":
                return self.chat(json.loads(await request.body()))
            prefix = f"/v1/accounts/{self.account}/"
            if not path.startswith(prefix):
                raise ValueError(f"{where}: not under this account")
            rest = path.removeprefix(prefix)
            collection, _, tail = rest.partition("/")
            if collection == "datasets":
                return await self.datasets_route(request, tail)
            if collection in ("evaluatorsV2", "evaluators"):
                return await self.evaluators_route(request, tail)
            if collection in CREATE_PARAMS:
                return await self.jobs_route(request, collection, tail)
        except ValueError as exc:
            return self.reject(400, str(exc))
        return self.reject(404, f"{where}: no such route")

    # datasets --------------------------------------------------------------------------------------

    def dataset_body(self, dataset_id: str) -> dict[str, Any]:
        d = self.datasets[dataset_id]
        return {
            "name": f"accounts/{self.account}/datasets/{dataset_id}",
            "createTime": d["created"],
            "exampleCount": d["exampleCount"],
            "format": d["format"],
            "state": "READY" if d["content"] else "UPLOADING",
            "userUploaded": {},
        }

    async def datasets_route(self, request: Request, tail: str) -> Response:
        method, where = request.method, f"{request.method} {request.url.path}"
        if not tail and method == "POST":
            body = json.loads(await request.body())
            self.body_errors(dataset_create_params.DatasetCreateParams, body, where)
            dataset_id = body["datasetId"]
            if dataset_id in self.datasets:
                return self.error(409, f"dataset {dataset_id} already exists")
            self.datasets[dataset_id] = {"created": stamp(), "content": b"", **body["dataset"]}
            return self.answer(Dataset, self.dataset_body(dataset_id), where)
        dataset_id, _, verb = tail.partition(":")
        if dataset_id not in self.datasets:
            return self.error(404, f"dataset {dataset_id} not found")
        if not verb and method == "GET":
            return self.answer(Dataset, self.dataset_body(dataset_id), where)
        if verb == "upload" and method == "POST":
            form = await request.form()
            upload = form.get("file")
            if upload is None or isinstance(upload, str) or set(form) != {"file"}:
                raise ValueError(f"{where}: expected one multipart field `file`")
            content = await upload.read()
            self.datasets[dataset_id]["content"] = content
            self.uploaded.append("request")
            answer = {"id": dataset_id, "bytes": len(content), "filename": upload.filename or "", "object": "file"}
            return self.answer(DatasetUploadResponse, answer, where)
        if verb == "getUploadEndpoint" and method == "POST":
            body = json.loads(await request.body())
            self.body_errors(dataset_get_upload_endpoint_params.DatasetGetUploadEndpointParams, body, where)
            urls = {name: f"{self.url}/signed/{dataset_id}" for name in body["filenameToSize"]}
            return self.answer(DatasetGetUploadEndpointResponse, {"filenameToSignedUrls": urls}, where)
        if verb == "validateUpload" and method == "POST":
            if not self.datasets[dataset_id]["content"]:
                return self.error(400, f"dataset {dataset_id}: nothing was uploaded")
            return JSONResponse({})
        raise ValueError(f"{where}: no such route")

    # evaluators ------------------------------------------------------------------------------------

    def evaluator_body(self, evaluator_id: str) -> dict[str, Any]:
        return {**self.evaluators[evaluator_id], "name": f"accounts/{self.account}/evaluators/{evaluator_id}",
                "state": "ACTIVE", "createTime": stamp()}  # fmt: skip

    async def evaluators_route(self, request: Request, tail: str) -> Response:
        method, where = request.method, f"{request.method} {request.url.path}"
        if not tail and method == "POST":
            body = json.loads(await request.body())
            self.body_errors(evaluator_create_params.EvaluatorCreateParams, body, where)
            evaluator_id = body.get("evaluatorId") or uuid.uuid4().hex[:12]
            if evaluator_id in self.evaluators:
                return self.error(409, f"evaluator {evaluator_id} already exists")
            for criterion in body["evaluator"].get("criteria", []):
                snippets = criterion.get("codeSnippets") or {}
                if snippets.get("entryFile") not in snippets.get("fileContents", {}):
                    return self.error(400, f"evaluator {evaluator_id}: entryFile is not among its fileContents")
            self.evaluators[evaluator_id] = body["evaluator"]
            return self.answer(EvaluatorCreateResponse, self.evaluator_body(evaluator_id), where)
        if tail in self.evaluators and method == "GET":
            return self.answer(EvaluatorGetResponse, self.evaluator_body(tail), where)
        return self.error(404, f"evaluator {tail} not found")

    # jobs ------------------------------------------------------------------------------------------

    def job_body(self, name: str) -> dict[str, Any]:
        job = self.jobs[name]
        body = {k: v for k, v in job["body"].items() if k not in ("supervisedFineTuningJobId", "dpoJobId",
                                                                  "reinforcementFineTuningJobId")}  # fmt: skip
        out: dict[str, Any] = {**body, "name": name, "state": job["state"], "createTime": job["created"],
                               "updateTime": stamp()}  # fmt: skip
        if job["progress"] is not None:
            out["jobProgress"] = {"percent": job["progress"], "epoch": 1}
        if job["message"]:
            out["status"] = {"code": job["code"], "message": job["message"]}
        known = {info.alias or field for field, info in CREATE_PARAMS[name.split("/")[2]][1].model_fields.items()}
        return {k: v for k, v in out.items() if k in known}  # a DPO job has no progress or update time

    async def jobs_route(self, request: Request, kind: str, tail: str) -> Response:
        method, where = request.method, f"{request.method} {request.url.path}"
        params, model, id_query = CREATE_PARAMS[kind]
        if not tail and method == "POST":
            body = json.loads(await request.body())
            self.body_errors(params, body, where)
            job_id = request.query_params.get(id_query) or uuid.uuid4().hex[:12]
            name = f"accounts/{self.account}/{kind}/{job_id}"
            if name in self.jobs:
                return self.error(409, f"{kind} {job_id} already exists")
            settings = body.get("trainingConfig", body)
            if settings.get("baseModel") not in self.models:
                return self.error(400, f"base model {settings.get('baseModel')} cannot be fine-tuned")
            for dataset in filter(None, (body["dataset"], body.get("evaluationDataset"))):
                if dataset.rsplit("/", 1)[-1] not in self.datasets:
                    return self.error(400, f"dataset {dataset} not found")
            if "evaluator" in body and body["evaluator"].rsplit("/", 1)[-1] not in self.evaluators:
                return self.error(400, f"evaluator {body['evaluator']} not found")
            self.jobs[name] = {"body": body, "state": "JOB_STATE_CREATING", "created": stamp(), "progress": None,
                               "message": "", "code": "OK", "fail_with": self.fail_next_job}  # fmt: skip
            self.fail_next_job = None
            return self.answer(model, self.job_body(name), where)
        job_id, _, verb = tail.partition(":")
        name = f"accounts/{self.account}/{kind}/{job_id}"
        if name not in self.jobs:
            return self.error(404, f"{kind} {job_id} not found")
        job = self.jobs[name]
        if not verb and method == "GET":
            self.advance(name)
            return self.answer(model, self.job_body(name), where)
        if verb == "cancel" and method == "POST":
            if job["state"] in ("JOB_STATE_COMPLETED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"):
                return self.error(400, f"job {job_id} has ended")
            job["state"] = "JOB_STATE_CANCELLING"
            return JSONResponse({})
        if verb == "resume" and method == "POST":
            if job["state"] not in ("JOB_STATE_CANCELLED", "JOB_STATE_FAILED", "JOB_STATE_PAUSED"):
                return self.error(400, f"job {job_id} is {job['state']}: nothing to resume")
            job.update(state="JOB_STATE_RUNNING", message="", code="OK", fail_with=None)
            return JSONResponse({})
        raise ValueError(f"{where}: no such route")

    def advance(self, name: str) -> None:
        job = self.jobs[name]
        state = job["state"]
        if state == "JOB_STATE_CREATING":
            job["state"] = "JOB_STATE_VALIDATING"
        elif state == "JOB_STATE_VALIDATING":
            job["state"], job["progress"] = "JOB_STATE_RUNNING", 0
        elif state == "JOB_STATE_RUNNING":
            if job["fail_with"]:
                job.update(state="JOB_STATE_FAILED", message=job["fail_with"], code="INVALID_ARGUMENT")
                return
            job["progress"] = next(p for p in PROGRESS if p > (job["progress"] or 0))
            if job["progress"] == 100:
                job["state"] = "JOB_STATE_WRITING_RESULTS"
        elif state == "JOB_STATE_WRITING_RESULTS":
            job["state"] = "JOB_STATE_COMPLETED"
            body = job["body"]
            output = body.get("trainingConfig", body).get("outputModel")
            full = f"accounts/{self.account}/models/{output}"
            if "trainingConfig" in body:
                body["trainingConfig"]["outputModel"] = full
            else:
                body["outputModel"] = full
            self.recall.learn(full, self.datasets[body["dataset"].rsplit("/", 1)[-1]]["content"])
        elif state == "JOB_STATE_CANCELLING":
            job["state"] = "JOB_STATE_CANCELLED"

    # inference -------------------------------------------------------------------------------------

    def chat(self, body: dict[str, Any]) -> Response:
        self.body_errors(completion_create_params.CompletionCreateParamsNonStreaming, body, "POST /v1/chat/completions")
        model = body["model"]
        target, _, deployment = model.partition("#")
        if deployment:
            if deployment not in self.deployments:
                return self.error(404, f"deployment {deployment} not found")
            if target not in self.recall.learned:
                return self.error(404, f"model {target} is not deployed on {deployment}")
        elif target not in self.models:
            return self.error(404, f"model {target} is not served serverless; deploy it")
        prompt = next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), "")
        text = self.recall.answer(target, prompt)
        usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": len(text.split()),
                 "total_tokens": len(prompt.split()) + len(text.split())}  # fmt: skip
        answer = {"id": uuid.uuid4().hex, "object": "chat.completion", "created": int(time.time()), "model": model,
                  "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
                  "usage": usage}  # fmt: skip
        return self.answer(completion_create_response.CompletionCreateResponse, answer, "POST /v1/chat/completions")
