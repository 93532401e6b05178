"""A stateful service speaking OpenAI's fine-tuning wire API on 127.0.0.1, checked against a published spec: the
plumbing the loopback Azure OpenAI and the OpenAI-compatible hosts (Nebius) share.

Every request body and query the SDK sends, and every answer, is checked against the spec given (Azure's v1 preview,
or OpenAI's own); what the service would refuse is answered as it would be and recorded as a violation, which fails
the test. Jobs walk OpenAI's lifecycle, one step per read of the job: validating_files → queued → running (a metrics
event and a checkpoint per read) → succeeded, or cancelled / paused.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.loopback import Provider, Recall
from tests.openapi import Spec

STEPS = 3  # training steps a job runs; each read of a running job advances one


@dataclass
class WireJob:
    id: str
    request: dict[str, Any]  # as the service received it
    status: str = "validating_files"
    step: int = 0
    created_at: int = field(default_factory=lambda: int(time.time()))
    fine_tuned_model: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)  # oldest first
    checkpoints: list[dict[str, Any]] = field(default_factory=list)


class OpenAIWire(Provider):
    """Files, fine-tuning jobs (with events, checkpoints, cancel, pause, resume) and chat, under `prefix`."""

    def __init__(self, spec: Spec, prefix: str, models: tuple[str, ...]):
        super().__init__()
        self.spec = spec
        self.prefix = prefix
        self.models = set(models)
        self.files: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, WireJob] = {}
        self.recall = Recall()
        self.completions: list[dict[str, Any]] = []  # chat request bodies, in order

    # hooks for each service ------------------------------------------------------------------------

    def authorized(self, request: Request) -> bool:
        raise NotImplementedError

    def fine_tuned_name(self, job: WireJob) -> str:
        return f"ft:{job.request['model']}:acct:{job.request.get('suffix') or 'fto'}:{job.id[-8:]}"

    def file_fields(self, form: dict[str, str]) -> dict[str, Any]:
        """The multipart form as the spec's object (a service with nested fields rebuilds them)."""
        return form

    async def other(self, request: Request, parts: list[str]) -> Response | None:
        """Routes outside the shared wire API (None: no such route)."""
        return None

    # plumbing --------------------------------------------------------------------------------------

    def error(self, status: int, message: str) -> Response:
        return JSONResponse({"error": {"message": message, "type": "invalid_request_error", "code": None,
                                       "param": None}}, status_code=status)  # fmt: skip

    def answer(self, request: Request, body: Any, status: int = 200) -> Response:
        """Answer after checking `body` against the spec's response for this route."""
        problems = self.spec.response_errors(request.method, request.url.path, status, body)
        if problems:
            self.violations.append(f"answer to {request.method} {request.url.path}: {problems}")
        return JSONResponse(body, status_code=status)

    def check_query(self, request: Request) -> None:
        """Only the query parameters the spec lists for the route, each valid under its schema."""
        listed = {
            p["name"]: p for p in self.spec.operation(request.method, request.url.path).get("parameters", [])
            if p.get("in") == "query"
        }  # fmt: skip
        for given, value in request.query_params.items():
            name = given.split("[", 1)[0]  # a deepObject parameter (metadata[key]=value) is listed by its name
            if name not in listed or ("[" in given and listed[name].get("style") != "deepObject"):
                raise ValueError(f"{request.method} {request.url.path}: unknown query parameter {name!r}")
            schema = listed[name].get("schema", {})
            if "[" in given:
                schema = schema.get("additionalProperties") or {"type": "string"}
            typed: Any = int(value) if schema.get("type") == "integer" and value.lstrip("-").isdigit() else value
            problems = self.spec.errors(schema, typed)
            if problems:
                raise ValueError(f"{request.method} {request.url.path}: query {name}={value!r}: {problems}")

    async def checked_json(self, request: Request) -> Any:
        body = json.loads(await request.body() or b"null")
        problems = self.spec.request_errors(request.method, request.url.path, body)
        if problems:
            raise ValueError(f"{request.method} {request.url.path}: {problems}")
        return body

    async def handle(self, request: Request) -> Response:
        path, method = request.url.path, request.method
        if not self.authorized(request):
            return self.reject(401, f"{method} {path}: no or wrong credential")
        try:
            if path.startswith(self.prefix + "/"):
                parts = path.removeprefix(self.prefix + "/").split("/")
                self.check_query(request)
                if parts[0] == "files":
                    return await self.files_route(request, parts[1:])
                if parts[:2] == ["fine_tuning", "jobs"]:
                    return await self.jobs_route(request, parts[2:])
                if parts == ["chat", "completions"] and method == "POST":
                    body = await self.checked_json(request)
                    return self.answer(request, self.chat(body["model"], body))
            found = await self.other(request, path.strip("/").split("/"))
            if found is not None:
                return found
        except ValueError as exc:
            return self.reject(400, str(exc))
        return self.reject(404, f"{method} {path}: no such route")

    # files -----------------------------------------------------------------------------------------

    async def files_route(self, request: Request, rest: list[str]) -> Response:
        if not rest and request.method == "POST":
            form = await request.form()
            upload = form.get("file")
            fields = self.file_fields({k: str(v) for k, v in form.items() if k != "file"})
            problems = self.spec.request_errors("POST", request.url.path, {**fields, "file": "(bytes)"},
                                                media="multipart/form-data")  # fmt: skip
            if problems or upload is None or isinstance(upload, str):
                raise ValueError(f"POST {request.url.path}: {problems or 'no file part'}")
            file_id = f"file-{uuid.uuid4().hex}"
            content = await upload.read()
            self.files[file_id] = {"filename": upload.filename, "purpose": fields["purpose"], "content": content,
                                   "created_at": int(time.time()), "fields": fields}  # fmt: skip
            return self.answer(request, self.file_object(file_id))
        if len(rest) == 1 and request.method == "GET" and rest[0] in self.files:
            return self.answer(request, self.file_object(rest[0]))
        return self.error(404, f"file {rest[0] if rest else ''} not found")

    def file_object(self, file_id: str) -> dict[str, Any]:
        f = self.files[file_id]
        return {"id": file_id, "object": "file", "bytes": len(f["content"]), "created_at": f["created_at"],
                "filename": f["filename"], "purpose": f["purpose"], "status": "processed"}  # fmt: skip

    # fine-tuning -----------------------------------------------------------------------------------

    async def jobs_route(self, request: Request, rest: list[str]) -> Response:
        method = request.method
        if not rest and method == "POST":
            body = await self.checked_json(request)
            for key in ("training_file", "validation_file"):
                if body.get(key) and body[key] not in self.files:
                    raise ValueError(f"{key} {body[key]} was never uploaded")
            if body["model"] not in self.models:
                return self.error(400, f"model {body['model']} cannot be fine-tuned here")
            job = WireJob(id=f"ftjob-{uuid.uuid4().hex}", request=body)
            self.jobs[job.id] = job
            self.event(job, "Job enqueued")
            return self.answer(request, self.job_object(job))
        if not rest and method == "GET":
            after = request.query_params.get("after")
            listed = sorted(self.jobs.values(), key=lambda j: j.created_at, reverse=True)
            ids = [j.id for j in listed]
            start = ids.index(after) + 1 if after in ids else 0
            limit = int(request.query_params.get("limit", 20))
            page = listed[start : start + limit]
            return self.answer(request, {"object": "list", "data": [self.job_object(j) for j in page],
                                         "has_more": start + limit < len(listed)})  # fmt: skip
        job = self.jobs.get(rest[0])
        if job is None:
            return self.error(404, f"fine-tuning job {rest[0]} not found")
        what = rest[1:]
        if not what and method == "GET":
            self.advance(job)
            return self.answer(request, self.job_object(job))
        if what in (["events"], ["checkpoints"]) and method == "GET":
            items = (job.events if what == ["events"] else job.checkpoints)[::-1]  # newest first
            ids = [item["id"] for item in items]
            after = request.query_params.get("after")
            start = ids.index(after) + 1 if after in ids else 0
            limit = int(request.query_params.get("limit", 10))
            page = items[start : start + limit]
            body = {"object": "list", "data": page, "has_more": start + limit < len(items)}
            if what == ["checkpoints"]:
                body |= {"first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None}
            return self.answer(request, body)
        if what in (["cancel"], ["pause"], ["resume"]) and method == "POST":
            ended = job.status in ("succeeded", "failed", "cancelled")
            if ended:
                return self.error(400, f"job {job.id} has already ended ({job.status})")
            job.status = {"cancel": "cancelled", "pause": "paused", "resume": "running"}[what[0]]
            self.event(job, f"Job {job.status}")
            return self.answer(request, self.job_object(job))
        raise ValueError(f"{method} {request.url.path}: no such route")

    def event(self, job: WireJob, message: str, data: dict[str, Any] | None = None) -> None:
        event = {"object": "fine_tuning.job.event", "id": f"ftevent-{uuid.uuid4().hex}", "created_at": int(time.time()),
                 "level": "info", "message": message, "type": "metrics" if data else "message"}  # fmt: skip
        if data:
            event["data"] = data
        job.events.append(event)

    def advance(self, job: WireJob) -> None:
        """One step of the lifecycle per read of the job."""
        if job.status == "validating_files":
            job.status = "queued"
        elif job.status == "queued":
            job.status = "running"
            self.event(job, "Fine-tuning job started")
        elif job.status == "running":
            job.step += 1
            loss = round(2.0 / job.step, 4)
            self.event(job, f"Step {job.step}/{STEPS}: training loss={loss}",
                       {"step": job.step, "train_loss": loss, "total_steps": STEPS})  # fmt: skip
            job.checkpoints.append(
                {"object": "fine_tuning.job.checkpoint", "id": f"ftckpt-{uuid.uuid4().hex}",
                 "created_at": int(time.time()), "fine_tuning_job_id": job.id, "step_number": job.step,
                 "fine_tuned_model_checkpoint": f"{self.fine_tuned_name(job)}:ckpt-step-{job.step}",
                 "metrics": {"step": job.step, "train_loss": loss}}
            )  # fmt: skip
            if job.step == STEPS:
                job.status = "succeeded"
                job.fine_tuned_model = self.fine_tuned_name(job)
                self.recall.learn(job.fine_tuned_model, self.files[job.request["training_file"]]["content"])
                self.event(job, "The job has successfully completed")

    def job_object(self, job: WireJob) -> dict[str, Any]:
        body = job.request
        done = job.status == "succeeded"
        return {
            "object": "fine_tuning.job", "id": job.id, "created_at": job.created_at, "error": None,
            "fine_tuned_model": job.fine_tuned_model, "finished_at": int(time.time()) if done else None,
            "hyperparameters": {"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto"},
            "model": body["model"], "organization_id": "org-loopback", "result_files": [], "status": job.status,
            "trained_tokens": 1200 if done else None, "training_file": body["training_file"],
            "validation_file": body.get("validation_file"), "seed": body.get("seed", 0),
            "metadata": body.get("metadata"), "method": body.get("method", {"type": "supervised"}),
        }  # fmt: skip

    # inference -------------------------------------------------------------------------------------

    def chat(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        """A chat answer from `model` (fine-tuned models recall what they were taught)."""
        self.completions.append(body)
        prompt = next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), "")
        text = self.recall.answer(model, str(prompt))
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": text, "refusal": None}}],
            "usage": {"prompt_tokens": len(str(prompt).split()), "completion_tokens": len(text.split()),
                      "total_tokens": len(str(prompt).split()) + len(text.split())},
        }  # fmt: skip
