"""A stateful Together AI on 127.0.0.1 for the `together` backend's tests.

Every request body the SDK sends and every answer given is checked against Together's OpenAPI spec (the subset in
tests/fixtures/together-openapi); what Together would refuse is answered as Together would and recorded as a
violation, which fails the test. Jobs walk Together's real lifecycle, one step per read of the job: pending →
queued → running (a step of metrics and an event each read, checkpoints) → compressing → uploading → completed,
or error / cancel_requested → cancelled.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.conftest import FIXTURES
from tests.loopback import Provider, Recall
from tests.openapi import Spec

SPEC = Spec(FIXTURES / "together-openapi" / "openapi-subset.json", base="/v1")
# The spec's `oneOf` of linear and cosine scheduler arguments cannot be met by cosine arguments (linear's schema,
# open to extra keys, matches them too), so every cosine request the SDK sends would fail it: read it as anyOf.
_SCHEDULER = SPEC.document["components"]["schemas"]["LRScheduler"]["properties"]["lr_scheduler_args"]
_SCHEDULER["anyOf"] = _SCHEDULER.pop("oneOf")
LIMITS = {  # Together's model-limits answer: the spec's required fields and the SDK's
    "model_name": "",
    "max_num_epochs": 20,
    "max_num_evals": 100,
    "max_num_checkpoints": 20,
    "max_learning_rate": 1.0,
    "min_learning_rate": 1e-6,
    "max_seq_length_sft": 8192,
    "max_seq_length_dpo": 4096,
    "min_max_seq_length": 512,
    "default_gradient_accumulation_steps": 1,
    "supports_vision": False,
    "supports_tools": True,
    "supports_reasoning": False,
    "supports_full_training": True,
    "merge_output_lora": False,
    "lora_training": {
        "max_batch_size": 96,
        "max_batch_size_dpo": 48,
        "min_batch_size": 8,
        "max_rank": 64,
        "default_rank": 16,
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
    },
    "full_training": {"max_batch_size": 32, "max_batch_size_dpo": 16, "min_batch_size": 8},
}
STEPS = 3  # training steps a job runs; each read of a running job advances one


def stamp() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Job:
    id: str
    request: dict[str, Any]  # as Together received it
    model: str
    model_output_name: str
    created_at: str = field(default_factory=stamp)
    phase: str = "pending"
    step: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[dict[str, float]] = field(default_factory=list)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    fail_with: str | None = None


class Together(Provider):
    """Files, fine-tunes and chat, as Together's API answers them."""

    def __init__(self, key: str, models: tuple[str, ...] = ("meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",)):
        super().__init__()
        self.key = key
        self.models = set(models)
        self.files: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, Job] = {}
        self.recall = Recall()
        self.fail_next_job: str | None = None  # the next job created ends in error with this message
        self.credit_limit = 1000.0
        self.completions = 0

    def error(self, status: int, message: str) -> Response:
        return JSONResponse({"error": {"message": message, "type": "invalid_request_error"}}, status_code=status)

    def answer(self, request: Request, body: Any, status: int = 200, schema: str | None = None) -> Response:
        """Answer after checking `body` against the spec's response (or a named component) schema."""
        problems = (
            SPEC.errors({"$ref": f"#/components/schemas/{schema}"}, body)
            if schema
            else SPEC.response_errors(request.method, request.url.path, status, body)
        )
        if problems:
            self.violations.append(f"answer to {request.method} {request.url.path}: {problems}")
        return JSONResponse(body, status_code=status)

    async def checked_json(self, request: Request) -> Any:
        body = json.loads(await request.body() or b"null")
        # The spec requires `model` on a create, but Together's own SDK sends either a model or a checkpoint to
        # continue from (`from_checkpoint`), never both: a create from a checkpoint is checked as if it named one.
        shown = {"model": "(from checkpoint)", **body} if isinstance(body, dict) and "from_checkpoint" in body else body
        problems = SPEC.request_errors(request.method, request.url.path, shown)
        if problems:
            raise ValueError(f"{request.method} {request.url.path}: {problems}")
        return body

    async def handle(self, request: Request) -> Response:
        path, method = request.url.path, request.method
        parts = path.strip("/").split("/")
        if parts[0] == "upload" and method == "PUT":  # a presigned storage URL: no API key, by design
            return await self.receive_upload(parts[1], request)
        if request.headers.get("authorization") != f"Bearer {self.key}":
            return self.reject(401, f"{method} {path}: no or wrong API key")
        try:
            if parts[:2] == ["v1", "files"]:
                return await self.files_route(request, parts[2:])
            if parts[:2] == ["v1", "fine-tunes"]:
                return await self.fine_tunes_route(request, parts[2:])
            if path == "/v1/chat/completions" and method == "POST":
                return self.chat(request, await self.checked_json(request))
        except ValueError as exc:
            return self.reject(400, str(exc))
        return self.reject(404, f"{method} {path}: no such route")

    # files -----------------------------------------------------------------------------------------

    def file_response(self, file_id: str) -> dict[str, Any]:
        f = self.files[file_id]
        return {
            "id": file_id,
            "object": "file",
            "created_at": f["created_at"],
            "filename": f["filename"],
            "bytes": len(f["content"]),
            "purpose": f["purpose"],
            "FileType": f["file_type"],
            "Processed": f["processed"],
        }

    async def files_route(self, request: Request, rest: list[str]) -> Response:
        method = request.method
        if not rest and method == "POST":  # step 1 of an upload: Together answers with where to PUT the bytes
            form = await request.form()
            fields = {k: str(v) for k, v in form.items()}
            problems = SPEC.errors({"$ref": "#/components/schemas/FilePurpose"}, fields.get("purpose"))
            problems += SPEC.errors({"$ref": "#/components/schemas/FileType"}, fields.get("file_type"))
            if problems or not fields.get("file_name"):
                raise ValueError(f"POST /v1/files: {problems or 'no file_name'}")
            file_id = f"file-{uuid.uuid4()}"
            self.files[file_id] = {
                "filename": fields["file_name"],
                "purpose": fields["purpose"],
                "file_type": fields["file_type"],
                "content": b"",
                "processed": False,
                "created_at": int(time.time()),
            }
            return Response(
                status_code=302,
                headers={"Location": f"{self.url}/upload/{file_id}", "X-Together-File-Id": file_id},
            )
        file_id = rest[0] if rest else ""
        if file_id not in self.files:
            return self.error(404, f"file {file_id} not found")
        if rest[1:] == ["preprocess"] and method == "POST":
            self.files[file_id]["processed"] = True
            return self.answer(request, self.file_response(file_id), schema="FileResponse")
        if len(rest) == 1 and method == "GET":
            return self.answer(request, self.file_response(file_id))
        raise ValueError(f"{method} {request.url.path}: no such route")

    async def receive_upload(self, file_id: str, request: Request) -> Response:
        if file_id not in self.files:
            return self.reject(404, f"PUT to an upload URL never issued: {file_id}")
        self.files[file_id]["content"] = await request.body()
        return Response(status_code=200)

    # fine-tunes ------------------------------------------------------------------------------------

    async def fine_tunes_route(self, request: Request, rest: list[str]) -> Response:
        method = request.method
        if rest == ["models", "limits"] and method == "GET":
            model = request.query_params.get("model_name", "")
            if model not in self.models:
                return JSONResponse({"message": f"model {model} is not available for fine-tuning"}, 404)
            return self.answer(request, {**LIMITS, "model_name": model})
        if rest == ["estimate-price"] and method == "POST":
            body = await self.checked_json(request)
            self.need_file(body["training_file"])
            tokens = len(self.files[body["training_file"]]["content"]) // 4 * body.get("n_epochs", 1)
            price = round(tokens * 0.48 / 1e6, 6)
            return self.answer(
                request,
                {
                    "estimated_total_price": price,
                    "allowed_to_proceed": price <= self.credit_limit,
                    "user_limit": self.credit_limit,
                    "estimated_train_token_count": tokens,
                    "estimated_eval_token_count": 0,
                },
            )
        if not rest and method == "POST":
            return self.create(request, await self.checked_json(request))
        if not rest and method == "GET":
            return self.answer(request, {"data": [self.truncated(j) for j in self.jobs.values()]})
        job = self.jobs.get(rest[0])
        if job is None:
            return self.error(404, f"fine-tune job {rest[0]} not found")
        what = rest[1:]
        if not what and method == "GET":
            self.advance(job)
            return self.answer(request, self.full(job))
        if what == ["events"] and method == "GET":
            return self.answer(request, {"data": job.events})
        if what == ["metrics"] and method == "GET":
            return self.answer(request, {"metrics": job.metrics})
        if what == ["checkpoints"] and method == "GET":
            return self.answer(request, {"data": job.checkpoints})
        if what == ["cancel"] and method == "POST":
            if job.phase in ("completed", "error", "cancelled"):
                return self.error(400, f"job {job.id} has already ended ({job.phase})")
            job.phase = "cancel_requested"
            self.event(job, "cancel_requested", "cancel requested")
            return self.answer(request, self.truncated(job))
        raise ValueError(f"{method} {request.url.path}: no such route")

    def need_file(self, file_id: str) -> None:
        if file_id not in self.files or not self.files[file_id]["processed"]:
            raise ValueError(f"file {file_id} was never uploaded (or not preprocessed)")

    def create(self, request: Request, body: dict[str, Any]) -> Response:
        self.need_file(body["training_file"])
        if body.get("validation_file"):
            self.need_file(body["validation_file"])
        model = body.get("model") or next(iter(self.models))  # from a checkpoint: the base of the job it continues
        if model not in self.models:
            raise ValueError(f"model {model} is not available for fine-tuning")
        if "wandb_api_key" in body:
            raise ValueError("fto must not send W&B keys")
        job_id = f"ft-{uuid.uuid4()}"
        name = f"acct/{model.rsplit('/', 1)[-1]}-{body.get('suffix', job_id[:8])}"
        job = Job(id=job_id, request=body, model=model, model_output_name=name, fail_with=self.fail_next_job)
        self.fail_next_job = None
        self.jobs[job_id] = job
        self.event(job, "job_pending", "job created")
        return self.answer(request, self.truncated(job))

    def event(self, job: Job, kind: str, message: str, level: str = "info", **extra: Any) -> None:
        job.events.append(
            {
                "object": "fine-tune-event",
                "created_at": stamp(),
                "level": level,
                "message": message,
                "type": kind,
                "param_count": 8_000_000_000,
                "token_count": 0,
                "total_steps": STEPS,
                "wandb_url": "",
                "step": job.step,
                "checkpoint_path": extra.get("checkpoint_path", ""),
                "model_path": "",
                "training_offset": 0,
                "hash": uuid.uuid4().hex,
            }
        )

    def advance(self, job: Job) -> None:
        """One step of Together's lifecycle per read of the job."""
        if job.phase == "pending":
            job.phase = "queued"
        elif job.phase == "queued":
            job.phase = "running"
            self.event(job, "training_start", "training started")
        elif job.phase == "running":
            if job.fail_with:
                job.phase = "error"
                self.event(job, "job_error", job.fail_with, level="error")
                return
            job.step += 1
            loss = round(2.0 / job.step, 4)
            job.metrics.append({"train/global_step": job.step, "train/loss": loss, "train/learning_rate": 1e-5})
            if job.request.get("validation_file"):
                job.metrics[-1]["eval/loss"] = round(loss * 1.1, 4)
            if job.step == STEPS:
                job.checkpoints.append(
                    {"step": job.step, "path": f"s3://together/{job.id}/{job.step}", "created_at": stamp(),
                     "checkpoint_type": "Intermediate"}
                )  # fmt: skip
                self.event(job, "training_complete", "training complete")
                job.phase = "compressing"
        elif job.phase == "compressing":
            job.phase = "uploading"
        elif job.phase == "uploading":
            job.phase = "completed"
            self.recall.learn(job.model_output_name, self.files[job.request["training_file"]]["content"])
            self.event(job, "job_complete", "job complete")
        elif job.phase == "cancel_requested":
            job.phase = "cancelled"
            self.event(job, "job_stopped", "job cancelled")

    def truncated(self, job: Job) -> dict[str, Any]:
        return {
            "id": job.id,
            "status": job.phase,
            "created_at": job.created_at,
            "updated_at": stamp(),
            "user_id": "user-1",
            "model": job.model,
            "model_output_name": job.model_output_name,
            "suffix": job.request.get("suffix", ""),
            "training_file": job.request["training_file"],
            "n_epochs": job.request.get("n_epochs", 1),
        }

    def full(self, job: Job) -> dict[str, Any]:
        body = {
            **{k: v for k, v in self.truncated(job).items() if k not in ("suffix", "user_id")},
            "events": job.events,
            "token_count": 1200 if job.phase == "completed" else 0,
            "epochs_completed": 1 if job.phase == "completed" else 0,
        }
        return {**body, "user_id": "user-1"}  # the SDK needs user_id, which the spec's FinetuneResponse lacks

    # inference -------------------------------------------------------------------------------------

    def chat(self, request: Request, body: dict[str, Any]) -> Response:
        model = body["model"]
        fine_tuned = {j.model_output_name for j in self.jobs.values() if j.phase == "completed"}
        if model not in fine_tuned and model not in self.models and not model.endswith("-Turbo"):
            return self.error(404, f"model {model} is not available for serverless inference")
        prompt = next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), "")
        text = self.recall.answer(model, prompt)
        self.completions += 1
        return self.answer(
            request,
            {
                "id": f"chat-{uuid.uuid4().hex}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "prompt": [],  # the spec requires it (filled only when `echo` is set)
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
                "usage": {
                    "prompt_tokens": len(prompt.split()),
                    "completion_tokens": len(text.split()),
                    "total_tokens": len(prompt.split()) + len(text.split()),
                },
            },
        )
