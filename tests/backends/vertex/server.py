"""A stateful Vertex AI (Gemini tuning and generateContent) on 127.0.0.1, with Cloud Storage from a real emulator
(gcp-storage-emulator) for the `vertex` backend's tests.

Vertex publishes its API through google-genai's types: a create's body is a TuningJob, every answer is a
TuningJob, a ListTuningJobsResponse or a GenerateContentResponse, and every key and value is checked against those
types (tests/sdk_models.py). Training data is read from the emulator by gs:// URI, as Vertex reads it. Jobs walk
Vertex's states, one step per read: PENDING → RUNNING (data statistics, a checkpoint per epoch) → SUCCEEDED with
a tuned model and its endpoint; or FAILED with an error; or CANCELLING → CANCELLED.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from google.cloud import storage
from google.genai import types
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.loopback import Provider, Recall
from tests.sdk_models import errors

EPOCHS_SHOWN = 2  # checkpoints a job reports while it runs


def stamp() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class Vertex(Provider):
    """tuningJobs and generateContent for one project and region."""

    def __init__(self, gcs: storage.Client, token: str, project: str = "proj", location: str = "us-central1"):
        super().__init__()
        self.token = token
        self.gcs = gcs
        self.prefix = f"/v1beta1/projects/{project}/locations/{location}"
        self.project, self.location = project, location
        self.models = {"gemini-2.5-flash", "gemini-2.5-flash-lite"}
        self.open_models = {"meta/llama3_1@llama-3.1-8b-instruct"}  # Model Garden's: chat-message data, LoRA or full
        self.jobs: dict[str, dict[str, Any]] = {}
        self.recall = Recall()
        self.fail_next_job: str | None = None

    def error(self, status: int, message: str) -> Response:
        names = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}
        body = {"error": {"code": status, "message": message, "status": names.get(status, "INTERNAL")}}
        return JSONResponse(body, status_code=status)

    def answer(self, model: Any, body: dict[str, Any], where: str) -> Response:
        problems = errors(model, body)
        if problems:
            self.violations.append(f"answer to {where}: {problems}")
        return JSONResponse(body)

    def read(self, uri: str) -> bytes:
        bucket, _, name = uri.removeprefix("gs://").partition("/")
        blob = self.gcs.bucket(bucket).blob(name)
        if not blob.exists():
            raise ValueError(f"{uri}: no such object")
        return bytes(blob.download_as_bytes())

    async def handle(self, request: Request) -> Response:
        path, method = request.url.path, request.method
        where = f"{method} {path}"
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return self.reject(401, f"{where}: no or wrong access token")
        if not path.startswith(self.prefix):
            return self.reject(404, f"{where}: not this project and region")
        rest = path.removeprefix(self.prefix + "/")
        try:
            if rest == "tuningJobs" and method == "POST":
                return self.create(json.loads(await request.body()), where)
            if rest == "tuningJobs" and method == "GET":
                return self.list(request.query_params.get("filter", ""), where)
            if rest.startswith("tuningJobs/"):
                job_id, _, verb = rest.removeprefix("tuningJobs/").partition(":")
                return self.job_route(job_id, verb, method, where)
            if rest.endswith(":generateContent") and method == "POST":
                return self.generate(rest.removesuffix(":generateContent"), json.loads(await request.body()), where)
        except ValueError as exc:
            return self.reject(400, f"{where}: {exc}")
        return self.reject(404, f"{where}: no such route")

    # tuning jobs -----------------------------------------------------------------------------------

    def create(self, body: dict[str, Any], where: str) -> Response:
        problems = errors(types.TuningJob, body)
        if problems:
            raise ValueError(f"not a TuningJob: {problems}")
        if body.get("baseModel") not in self.models | self.open_models:
            return self.error(400, f"base model {body.get('baseModel')} cannot be tuned")
        if body["baseModel"] in self.open_models:
            return self.create_open(body, where)
        spec = (body.get("supervisedTuningSpec") or body.get("preferenceOptimizationSpec")
                or body.get("reinforcementTuningSpec"))  # fmt: skip
        if not spec:
            raise ValueError("no supervisedTuningSpec, preferenceOptimizationSpec or reinforcementTuningSpec")
        training = self.read(spec["trainingDatasetUri"])
        for line in training.decode().splitlines():  # Vertex validates the data before it trains
            row = json.loads(line)
            problems = [p for turn in row.get("contents", []) for p in errors(types.Content, turn)]
            if "reinforcementTuningSpec" in body:  # an RL example: its prompt, and the references rewards read
                problems += errors(types.ReinforcementTuningExample, row)
                if not (spec.get("singleRewardConfig") or spec.get("compositeRewardConfig")):
                    problems.append("a reinforcement tuning job needs a reward config")
            if problems:
                return self.error(400, f"training data: {problems[0]}")
        if spec.get("validationDatasetUri"):
            self.read(spec["validationDatasetUri"])
        job_id = str(uuid.uuid4().int)[:18]
        name = f"projects/{self.project}/locations/{self.location}/tuningJobs/{job_id}"
        self.jobs[job_id] = {
            "body": {**body, "name": name, "state": "JOB_STATE_PENDING", "createTime": stamp()},
            "tick": 0,
            "training": training,
            "fail_with": self.fail_next_job,
        }
        self.fail_next_job = None
        return self.answer(types.TuningJob, self.jobs[job_id]["body"], where)

    def create_open(self, body: dict[str, Any], where: str) -> Response:
        """An open model's supervised tuning: a tuning mode, an output URI, chat-message rows; no Gemini adapter."""
        spec = body.get("supervisedTuningSpec") or {}
        if spec.get("tuningMode") not in ("TUNING_MODE_PEFT_ADAPTER", "TUNING_MODE_FULL"):
            raise ValueError("an open model's tuning needs supervisedTuningSpec.tuningMode")
        if not str(body.get("outputUri", "")).startswith("gs://"):
            raise ValueError("an open model's tuning needs outputUri (gs://…) for the tuned weights")
        if "adapterSize" in (spec.get("hyperParameters") or {}):
            raise ValueError("adapterSize is Gemini's; open models take tuningMode")
        training = self.read(spec["trainingDatasetUri"])
        for line in training.decode().splitlines():
            turns = json.loads(line).get("messages")
            if not turns or not all({"role", "content"} <= set(t) for t in turns):
                return self.error(400, "training data: open models read rows of chat `messages`")
        job_id = str(uuid.uuid4().int)[:18]
        name = f"projects/{self.project}/locations/{self.location}/tuningJobs/{job_id}"
        self.jobs[job_id] = {"body": {**body, "name": name, "state": "JOB_STATE_PENDING", "createTime": stamp()},
                             "tick": 0, "training": training, "fail_with": None}  # fmt: skip
        return self.answer(types.TuningJob, self.jobs[job_id]["body"], where)

    def list(self, filter_text: str, where: str) -> Response:
        wanted = filter_text.removeprefix('labels.fto_job_id="').removesuffix('"') if filter_text else None
        found = [j["body"] for j in self.jobs.values()
                 if wanted is None or (j["body"].get("labels") or {}).get("fto_job_id") == wanted]  # fmt: skip
        return self.answer(types.ListTuningJobsResponse, {"tuningJobs": found}, where)

    def job_route(self, job_id: str, verb: str, method: str, where: str) -> Response:
        job = self.jobs.get(job_id)
        if job is None:
            return self.error(404, f"tuning job {job_id} not found")
        if not verb and method == "GET":
            self.advance(job)
            return self.answer(types.TuningJob, job["body"], where)
        if verb == "cancel" and method == "POST":
            if job["body"]["state"] in ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"):
                return self.error(400, f"tuning job {job_id} has ended")
            job["body"]["state"] = "JOB_STATE_CANCELLING"
            return JSONResponse({})
        raise ValueError("no such route")

    def advance(self, job: dict[str, Any]) -> None:
        body = job["body"]
        state = body["state"]
        endpoint = f"projects/{self.project}/locations/{self.location}/endpoints/{body['name'].rsplit('/', 1)[-1]}"
        if state == "JOB_STATE_PENDING":
            body["state"] = "JOB_STATE_RUNNING"
            examples = len(job["training"].splitlines())
            body["tuningDataStats"] = {"supervisedTuningDataStats": {
                "tuningDatasetExampleCount": examples, "totalBillableTokenCount": examples * 20,
                "tuningStepCount": examples // 8 or 1}}  # fmt: skip
        elif state == "JOB_STATE_RUNNING":
            if job["fail_with"]:
                body["state"] = "JOB_STATE_FAILED"
                body["error"] = {"code": 3, "message": job["fail_with"]}
                return
            job["tick"] += 1
            checkpoints = body.setdefault("tunedModel", {"model": f"{body['name']}/model"}).setdefault(
                "checkpoints", []
            )
            checkpoints.append({"checkpointId": str(job["tick"]), "epoch": job["tick"],
                                "step": job["tick"] * 10, "endpoint": f"{endpoint}-ckpt{job['tick']}"})  # fmt: skip
            if job["tick"] == EPOCHS_SHOWN:
                body["state"] = "JOB_STATE_SUCCEEDED"
                body["tunedModel"]["endpoint"] = endpoint
                body["endTime"] = stamp()
                self.recall.learn(endpoint, job["training"])
        elif state == "JOB_STATE_CANCELLING":
            body["state"] = "JOB_STATE_CANCELLED"

    # inference -------------------------------------------------------------------------------------

    def generate(self, target: str, body: dict[str, Any], where: str) -> Response:
        allowed = {"contents": list[types.Content], "systemInstruction": types.Content,
                   "generationConfig": types.GenerationConfig}  # fmt: skip
        problems = [f"{key}: not a field" for key in body if key not in allowed]
        problems += [p for key, value in body.items() if key in allowed for p in errors(allowed[key], value, key)]
        if problems:
            raise ValueError(str(problems))
        if target.startswith("publishers/google/models/"):
            model = target.removeprefix("publishers/google/models/")
            if model not in self.models:
                return self.error(404, f"publisher model {model} not found")
        else:
            model = f"projects/{self.project}/locations/{self.location}/{target}"
            if model not in self.recall.learned:
                return self.error(404, f"endpoint {model} not found")
        prompt = next((p["text"] for c in reversed(body["contents"]) if c.get("role") == "user"
                       for p in c["parts"]), "")  # fmt: skip
        text = self.recall.answer(model, prompt)
        answer = {
            "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}],
            "usageMetadata": {
                "promptTokenCount": len(prompt.split()),
                "candidatesTokenCount": len(text.split()),
                "totalTokenCount": len(prompt.split()) + len(text.split()),
            },
            "modelVersion": model,
        }
        return self.answer(types.GenerateContentResponse, answer, where)
