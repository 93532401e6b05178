"""How the openai backend meets a misbehaving API: a scripted server on 127.0.0.1 answers 429 with Retry-After,
500s, slow replies and malformed bodies; the real openai SDK talks to it."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from fto.backends import registry
from fto.backends.base import UploadedData
from fto.orchestrator import retry
from fto.orchestrator.errors import BackendError
from fto.schemas import BackendSection, JobSpec, JobStatus
from tests.conftest import ANIMALS

JOB = {
    "object": "fine_tuning.job",
    "id": "ftjob-1",
    "created_at": 1,
    "error": None,
    "fine_tuned_model": None,
    "finished_at": None,
    "hyperparameters": {"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto"},
    "model": "gpt-4o-mini-2024-07-18",
    "organization_id": "org-1",
    "result_files": [],
    "status": "running",
    "trained_tokens": None,
    "training_file": "file-1",
    "validation_file": None,
    "seed": 0,
}


class Scripted:
    """Answers each request with the next scripted reply: (status, headers, body, delay), then with `default`."""

    def __init__(self) -> None:
        self.replies: deque[tuple[int, dict[str, str], bytes, float]] = deque()
        self.requests: list[tuple[str, str, float]] = []
        script = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                script.requests.append((self.command, self.path, time.monotonic()))
                status, headers, body, delay = (
                    script.replies.popleft() if script.replies else (200, {}, json.dumps(JOB).encode(), 0.0)
                )
                time.sleep(delay)
                try:
                    self.send_response(status)
                    for k, v in {"content-type": "application/json", **headers}.items():
                        self.send_header(k, v)
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def then(self, status: int, body: Any = None, headers: dict[str, str] | None = None, delay: float = 0.0) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body if body is not None else JOB).encode()
        self.replies.append((status, headers or {}, raw, delay))


def _error(message: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": "requests", "param": None, "code": code}}


@pytest.fixture
def api(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-never-shown-0123456789")
    server = Scripted()
    yield server
    server.httpd.shutdown()


def _backend(api: Scripted, **options: Any):
    section = BackendSection.model_validate({"base_url": api.url, "timeout": 1.0, "max_retries": 0, **options})
    return registry.create("openai", section)


def test_429_is_retryable_with_the_wait_the_server_asked_for(api):
    api.then(429, _error("Rate limit reached", "rate_limit_exceeded"), {"retry-after": "1"})
    with pytest.raises(BackendError) as caught:
        _backend(api).get("ftjob-1")
    assert caught.value.retryable and caught.value.retry_after == 1.0 and caught.value.status_code == 429
    assert "sk-test" not in str(caught.value)


def test_the_sdk_honours_retry_after_then_succeeds(api):
    api.then(429, _error("Rate limit reached"), {"retry-after": "1"})
    started = time.monotonic()
    assert _backend(api, max_retries=2).get("ftjob-1").status == JobStatus.RUNNING
    assert time.monotonic() - started >= 0.9  # it waited as told, not at once
    assert len(api.requests) == 2


def test_a_daily_limit_is_not_retried(api):
    api.then(429, _error("daily limit", "daily_rate_limit_exceeded"), {"retry-after": "1"})
    with pytest.raises(BackendError) as caught:
        _backend(api).get("ftjob-1")
    assert not caught.value.retryable


def test_500_and_timeouts_are_retryable_400_is_not(api):
    backend = _backend(api)
    api.then(500, _error("The server had an error"))
    with pytest.raises(BackendError) as caught:
        backend.get("ftjob-1")
    assert caught.value.retryable and caught.value.status_code == 500
    api.then(200, JOB, delay=2.0)  # longer than the 1 s the client waits
    with pytest.raises(BackendError, match="timed out") as caught:
        backend.get("ftjob-1")
    assert caught.value.retryable
    api.then(400, _error("invalid training_file"))
    with pytest.raises(BackendError, match="invalid training_file") as caught:
        backend.get("ftjob-1")
    assert not caught.value.retryable


def test_malformed_bodies_are_errors_not_crashes(api):
    backend = _backend(api)
    api.then(200, b"{not json")
    with pytest.raises(BackendError, match="malformed") as caught:
        backend.get("ftjob-1")
    assert caught.value.retryable
    api.then(200, {"object": "chat.completion", "id": "x", "created": 1, "model": "m", "choices": []})
    from fto.backends.base import GenerationParams
    from fto.schemas import Message

    with pytest.raises(BackendError, match="no choices"):
        backend.complete("m", [Message(role="user", content="hi")], GenerationParams())


def test_a_create_retried_after_429_makes_one_job(api):
    """The submit path retries transient failures itself, and each retry first asks whether the job exists."""
    spec = JobSpec.model_validate({"name": "faults", "data": {"train": str(ANIMALS)}})
    backend = _backend(api)
    api.then(429, _error("slow down"), {"retry-after": "0.2"})
    created = retry.call(lambda: backend.submit(spec, UploadedData(train_file="file-1"), "job-1"))
    assert created == "ftjob-1"
    creates = [r for r in api.requests if r[0] == "POST" and r[1] == "/v1/fine_tuning/jobs"]
    assert len(creates) == 2 and creates[1][2] - creates[0][2] >= 0.2


def _event(number: int) -> dict[str, Any]:
    return {"object": "fine_tuning.job.event", "id": f"ftevent-{number:05d}", "created_at": number, "level": "info",
            "message": f"event {number}", "type": "message"}  # fmt: skip


class EventLists:
    """Lists `count` events newest first, honouring `after` (or, `stuck`, ignoring it as a broken mock does)."""

    def __init__(self, count: int, stuck: bool = False):
        self.requests = 0
        events = [_event(n) for n in range(count, 0, -1)]
        lists = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                lists.requests += 1
                url = urlparse(self.path)
                data: list[dict[str, Any]] = []
                more = False
                if url.path.endswith("/events"):
                    after = parse_qs(url.query).get("after", [None])[0]
                    ids = [e["id"] for e in events]
                    start = 0 if stuck or after is None else ids.index(after) + 1
                    data, more = events[start : start + 100], stuck or start + 100 < len(events)
                body = json.dumps({"object": "list", "data": data, "has_more": more}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def test_a_list_that_never_advances_is_read_once_with_a_warning(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-never-shown-0123456789")
    lists = EventLists(150, stuck=True)  # has_more: true forever, the same page whatever `after` says
    try:
        backend = registry.create("openai", BackendSection.model_validate({"base_url": lists.url, "timeout": 2.0}))
        updates = backend.updates("ftjob-1", None)
    finally:
        lists.httpd.shutdown()
    assert len(updates.events) == 101 and lists.requests == 3  # 100 events, 1 warning; 2 event pages + checkpoints
    assert updates.events[-1].level == "warning" and "did not advance" in updates.events[-1].message


def test_a_long_backlog_is_read_over_several_polls_and_nothing_is_lost(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-never-shown-0123456789")
    lists = EventLists(2500)
    try:
        backend = registry.create("openai", BackendSection.model_validate({"base_url": lists.url, "timeout": 2.0}))
        first = backend.updates("ftjob-1", None)
        second = backend.updates("ftjob-1", first.cursor)
        third = backend.updates("ftjob-1", second.cursor)
    finally:
        lists.httpd.shutdown()
    assert len(first.events) == 2000  # the page budget: the newest 2,000
    ids = [e.data["id"] for e in first.events + second.events + third.events]
    assert len(ids) == len(set(ids)) == 2500 and not third.events
