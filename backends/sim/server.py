"""A simulated fine-tuning provider on 127.0.0.1: jobs advance on a clock; a set fraction of requests fail.

    python -m fto.backends.sim.server --port 8765 --duration 5 --fail-rate 0.05

Used for demos (`fto sim serve`) and for load and fault tests of the job layer. Like real providers, it does not
deduplicate job creation (a client that retries a create blindly gets two jobs), it answers 429 with a
Retry-After, 500s, and requests that take longer than the client will wait (a timed-out create still creates).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

Scope = dict[str, Any]
LIST_OVERLAP = 0.01  # seconds a listing filtered by update time reaches back, against rounding at its edge


@dataclass
class SimJob:
    id: str
    key: str | None
    created: float
    duration: float
    fails: bool
    training_file: str = ""
    cancelled_at: float | None = None
    steps: int = 10


@dataclass
class SimProvider:
    """The provider's state and rules. An ASGI app: `uvicorn.run(SimProvider(...))`."""

    duration: float = 3.0  # seconds from create to the end of a job
    queued_fraction: float = 0.3  # of the duration spent queued before running
    fail_rate: float = 0.0  # fraction of requests answered with 429, 500 or a stall
    job_failure_rate: float = 0.0  # fraction of jobs that end failed
    stall: float = 2.0  # seconds a stalled request takes (longer than clients wait)
    latency: float = 0.0  # seconds each chat completion takes, as a model's answer would
    seed: int = 0
    jobs: dict[str, SimJob] = field(default_factory=dict)
    files: dict[str, dict[str, str]] = field(default_factory=dict)  # file id → its prompts and answers
    requests: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    # the rules ----------------------------------------------------------------------------------------

    def state(self, job: SimJob, now: float) -> dict[str, Any]:
        """A job's state at time `now`: queued, running with metrics so far, or ended."""
        elapsed = now - job.created
        start = job.duration * self.queued_fraction
        run = job.duration - start
        events: list[dict[str, Any]] = [{"at": job.created, "level": "info", "message": "job queued"}]
        metrics: list[dict[str, Any]] = []
        status = "queued"
        if job.cancelled_at is not None and job.cancelled_at - job.created < job.duration:
            elapsed = job.cancelled_at - job.created
        if elapsed >= start:
            status = "running"
            events.append({"at": job.created + start, "level": "info", "message": "training started"})
            done = min(job.steps, int((elapsed - start) / run * job.steps))
            metrics = [
                {
                    "step": s,
                    "total_steps": job.steps,
                    "loss": round(2.0 / s, 4),
                    "at": job.created + start + s * run / job.steps,
                }
                for s in range(1, done + 1)
            ]
        result: dict[str, Any] = {"id": job.id, "status": status, "fine_tuned_model": None, "error": None}
        if job.cancelled_at is not None and status != "succeeded" and elapsed < job.duration:
            result["status"] = "cancelled"
            events.append({"at": job.cancelled_at, "level": "warning", "message": "job cancelled"})
        elif elapsed >= job.duration:
            if job.fails:
                result.update(status="failed", error="simulated training failure")
                events.append({"at": job.created + job.duration, "level": "error", "message": "job failed"})
            else:
                result.update(status="succeeded", fine_tuned_model=f"sim-tuned:{job.id}", trained_tokens=1000)
                events.append({"at": job.created + job.duration, "level": "info", "message": "job succeeded"})
        result["events"], result["metrics"] = events, metrics
        return result

    def changed_at(self, job: SimJob, now: float) -> float:
        """When the job last changed as of `now`: its last event or metric."""
        if job.cancelled_at is not None and job.cancelled_at <= now and job.cancelled_at - job.created < job.duration:
            return job.cancelled_at
        elapsed = now - job.created
        start = job.duration * self.queued_fraction
        if elapsed >= job.duration:
            return job.created + job.duration
        if elapsed < start:
            return job.created
        run = job.duration - start
        done = min(job.steps, int((elapsed - start) / run * job.steps))  # as `state` counts metrics
        return job.created + start + done * run / job.steps

    def listing(self, now: float, query: dict[str, str]) -> tuple[int, Any]:
        """A page of jobs, oldest first, as providers' list endpoints give them: states without events or metrics,
        each with when it last changed. `updated_after` keeps the jobs changed since (with a little overlap, so
        nothing is lost at the boundary); `after` is the last job id of the page before. `expand=news` adds their
        events and metrics (as Together's list carries events): those since `updated_after`, with the index of the
        first one given (`events_from`, `metrics_from`)."""
        try:
            limit = int(query["limit"])
            since = float(query["updated_after"]) - LIST_OVERLAP if "updated_after" in query else None
        except (ValueError, KeyError):
            return 400, _error("limit and updated_after must be numbers")
        if since is not None and not math.isfinite(since):
            return 400, _error("updated_after must be a finite number", "updated_after")
        if not 1 <= limit <= 1000:
            return 400, {"error": {"message": "limit must be between 1 and 1000"}}
        ids = list(self.jobs)
        after = query.get("after")
        if after is not None and after not in self.jobs:
            return 400, {"error": {"message": f"no job {after!r} to list after"}}
        page: list[dict[str, Any]] = []
        has_more = False
        for job_id in ids[ids.index(after) + 1 if after else 0 :]:
            job = self.jobs[job_id]
            changed = self.changed_at(job, now)
            if since is not None and changed < since:
                continue
            if len(page) == limit:
                has_more = True
                break
            state = self.state(job, now)
            if query.get("expand") != "news":
                del state["events"], state["metrics"]
            elif since is not None:
                for kind in ("events", "metrics"):
                    items = state[kind]
                    first = next((i for i, item in enumerate(items) if item["at"] >= since), len(items))
                    state[kind], state[f"{kind}_from"] = items[first:], first
            page.append(state | {"updated_at": changed})
        return 200, {"data": page, "has_more": has_more, "as_of": now}

    # HTTP ---------------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        received = bytearray()  # appended in place: a large upload is read in linear time
        while True:
            message = await receive()
            received += message.get("body", b"")
            if len(received) > MAX_BODY_BYTES:
                return await _send(send, 413, _error(f"request body over {MAX_BODY_BYTES // 2**20} MB"))
            if not message.get("more_body"):
                break
        body = bytes(received)
        method, path = scope["method"], scope["path"]
        query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
        route = f"{method} {_route(path)}"
        fault = None
        if route != "GET /v1/stats" and self.fail_rate and self.rng.random() < self.fail_rate:
            fault = self.rng.choice(("429", "500", "stall"))
            self.requests[f"{route} {fault}"] += 1
            if fault == "429":
                return await _send(send, 429, {"error": {"message": "rate limited"}}, {"retry-after": "0.2"})
            if fault == "500":
                return await _send(send, 500, {"error": {"message": "internal error"}})
        else:
            self.requests[route] += 1
        try:
            status, payload = self.handle(method, path, query, body)
        except _BadRequest as exc:  # a malformed request is the client's mistake: a 400 naming it, as OpenAI's
            status, payload = 400, _error(str(exc), exc.param)
        if fault == "stall":  # carried out, but the answer comes after the client has given up
            await asyncio.sleep(self.stall)
        elif self.latency and route == "POST /v1/chat/completions":
            await asyncio.sleep(self.latency)
        await _send(send, status, payload)

    def handle(self, method: str, path: str, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        """Answer one request: (HTTP status, JSON body)."""
        now = time.time()  # wall clock, so other processes can compare times
        parts = path.strip("/").split("/")
        if path == "/v1/stats":
            keys = Counter(job.key for job in self.jobs.values())
            return 200, {
                "requests": dict(self.requests),
                "jobs": len(self.jobs),
                "duplicates": {k: n for k, n in keys.items() if n > 1},
                "ends": {j.key: j.created + j.duration for j in self.jobs.values() if j.cancelled_at is None},
            }
        if path == "/v1/files" and method == "POST":
            file_id = "file-" + hashlib.sha256(body).hexdigest()[:16]
            self.files[file_id] = _answers(body)
            return 200, {"id": file_id, "bytes": len(body)}
        if path.startswith("/v1/files/") and method == "GET":
            file_id = path.removeprefix("/v1/files/")
            if file_id not in self.files:
                return 404, {"error": {"message": f"no file {file_id!r}"}}
            return 200, {"id": file_id}
        if path == "/v1/jobs" and method == "POST":
            request = _json_object(body)
            if not isinstance(request.get("training_file"), str) or request["training_file"] not in self.files:
                return 400, _error(f"unknown training_file {request.get('training_file')!r}", "training_file")
            metadata = request.get("metadata") or {}
            if not isinstance(metadata, dict):
                raise _BadRequest("metadata must be an object", "metadata")
            duration = request.get("duration", self.duration)
            if isinstance(duration, bool) or not isinstance(duration, int | float) or not 0 < duration < 1e7:
                raise _BadRequest("duration must be a number of seconds above 0", "duration")
            job = SimJob(
                id=f"simjob-{len(self.jobs) + 1}",
                key=metadata.get("fto_job_id"),
                created=now,
                duration=float(duration),
                fails=self.rng.random() < self.job_failure_rate,
                training_file=request["training_file"],
            )
            self.jobs[job.id] = job
            return 200, {"id": job.id, "status": "queued"}
        if path == "/v1/jobs" and method == "GET":
            key = query.get("fto_job_id")
            if "limit" in query:
                return self.listing(now, query)
            return 200, {"data": [{"id": j.id} for j in self.jobs.values() if key is None or j.key == key]}
        if len(parts) >= 3 and parts[:2] == ["v1", "jobs"]:
            found = self.jobs.get(parts[2])
            if found is None:
                return 404, {"error": {"message": f"no job {parts[2]!r}"}}
            job = found
            if len(parts) == 4 and parts[3] == "cancel" and method == "POST":
                job.cancelled_at = job.cancelled_at or now
                return 200, {"id": job.id, "status": "cancelled"}
            state = self.state(job, now)
            after = _count(query, "after_event"), _count(query, "after_metric")
            state["events"], state["metrics"] = state["events"][after[0] :], state["metrics"][after[1] :]
            return 200, state
        if path == "/v1/chat/completions" and method == "POST":
            request = _json_object(body)
            messages = request.get("messages")
            if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
                raise _BadRequest("messages must be a list of message objects", "messages")
            last = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), "")
            reply = self._reply(str(request.get("model") or ""), str(last))
            usage = {"prompt_tokens": len(str(last).split()), "completion_tokens": len(reply.split())}
            return 200, {"choices": [{"message": {"role": "assistant", "content": reply}}], "usage": usage}
        return 404, {"error": {"message": f"no route {method} {path}"}}

    def _reply(self, model: str, prompt: str) -> str:
        """The base model echoes; a fine-tuned one answers with the answer its training data gave the closest prompt.

        So a demo's comparison shows fine-tuning at work: the tuned model scores where the base cannot.
        """
        job = self.jobs.get(model.removeprefix("sim-tuned:")) if model.startswith("sim-tuned:") else None
        answers = self.files.get(job.training_file, {}) if job else {}
        if not answers:
            return f"echo: {prompt}"
        if prompt in answers:
            return answers[prompt]
        # the closest prompt shares the rarest words: its rarest shared word first, then the next (a template's words
        # are in many prompts, so the word that tells examples apart — the animal, say — decides)
        texts = {known: _words(known) for known in answers}
        seen_in = Counter(word for words in texts.values() for word in words)
        words = _words(prompt)

        def rarity(known: str) -> list[float]:
            return sorted((math.log(len(texts) / seen_in[w]) for w in words & texts[known]), reverse=True)

        return answers[max(texts, key=rarity)]


class _BadRequest(Exception):
    """A request the sim refuses (400), naming the field at fault."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


def _error(message: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}}


def _json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object with finite numbers, or a _BadRequest saying why not."""
    try:
        found = json.loads(body or b"{}", parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, NaN
        raise _BadRequest(f"the body is not valid JSON: {exc}") from None
    if not isinstance(found, dict):
        raise _BadRequest("the body must be a JSON object")
    return found


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _count(query: dict[str, str], name: str) -> int:
    value = query.get(name, "0")
    if not value.isdigit() or len(value) > 12:
        raise _BadRequest(f"{name} must be a count (0 or more), not {value[:40]!r}", name)
    return int(value)


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def _answers(body: bytes) -> dict[str, str]:
    """A chat JSONL file's last user prompt → assistant answer, for the fine-tuned model to repeat."""
    found: dict[str, str] = {}
    for line in body.splitlines():
        try:
            messages = json.loads(line).get("messages") or []
        except (json.JSONDecodeError, AttributeError):
            continue
        users = [m.get("content") for m in messages if m.get("role") == "user"]
        answers = [m.get("content") for m in messages if m.get("role") == "assistant"]
        if users and answers and isinstance(users[-1], str) and isinstance(answers[-1], str):
            found[users[-1]] = answers[-1]
    return found


MAX_BODY_BYTES = 256 * 2**20


def _route(path: str) -> str:
    parts = path.strip("/").split("/")
    if len(parts) >= 3 and parts[:2] == ["v1", "jobs"]:
        return "/v1/jobs/{id}" + ("/cancel" if len(parts) == 4 else "")
    return path


async def _send(send: Any, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
    body = json.dumps(payload).encode()
    raw = [(b"content-type", b"application/json"), *((k.encode(), v.encode()) for k, v in (headers or {}).items())]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def serve(host: str, port: int, provider: SimProvider) -> None:
    """Serve `provider` over HTTP until interrupted."""
    import uvicorn

    uvicorn.run(provider, host=host, port=port, log_level="warning", access_log=False, lifespan="off")


def main() -> None:
    """`python -m fto.backends.sim.server`: serve the simulated provider."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--fail-rate", type=float, default=0.0)
    parser.add_argument("--job-failure-rate", type=float, default=0.0)
    parser.add_argument("--stall", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    serve(
        args.host,
        args.port,
        SimProvider(
            duration=args.duration,
            fail_rate=args.fail_rate,
            job_failure_rate=args.job_failure_rate,
            stall=args.stall,
            seed=args.seed,
            latency=args.latency,
        ),
    )


if __name__ == "__main__":
    main()
