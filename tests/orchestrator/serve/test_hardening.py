"""Regression tests for what fuzzing `fto serve` and probing it by hand found (each failed before its fix)."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from pathlib import Path

import httpx
import pytest

from fto.backends.local.embedded import build
from tests.conftest import ANIMALS, run_fto

pytestmark = pytest.mark.slow  # starts servers and trains


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama (random weights) in the transformers layout, served as a base model."""
    rows = [json.loads(line) for line in ANIMALS.read_text().splitlines()[:50]]
    return build(rows, 0, tmp_path_factory.mktemp("model") / "tiny")


def _upload(url: str) -> str:
    response = httpx.post(f"{url}/files", files={"file": ANIMALS.open("rb")}, data={"purpose": "fine-tune"})
    return str(response.json()["id"])


def _job(url: str, file_id: str, epochs: int = 1, **extra: object) -> dict:
    body = {"model": "embedded:tiny-llama", "training_file": file_id, **extra}
    body["method"] = {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": epochs}}}
    response = httpx.post(f"{url}/fine_tuning/jobs", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _wait(url: str, job_id: str, wanted: set[str], seconds: float = 120) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job = httpx.get(f"{url}/fine_tuning/jobs/{job_id}").json()
        if job["status"] in wanted:
            return dict(job)
        time.sleep(0.2)
    raise AssertionError(f"{job_id} did not reach {wanted}")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_a_400_and_never_stored(serve, constant: str):
    server = serve()
    file_id = _upload(server.url)
    hyper = {"learning_rate_multiplier": "CONSTANT"}
    body = {"model": "embedded:tiny-llama", "training_file": file_id, "method": {"type": "supervised",
            "supervised": {"hyperparameters": hyper}}}  # fmt: skip
    raw = json.dumps(body).replace('"CONSTANT"', constant)
    response = httpx.post(f"{server.url}/fine_tuning/jobs", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400 and constant in response.json()["error"]["message"]
    listing = httpx.get(f"{server.url}/fine_tuning/jobs")
    assert listing.status_code == 200 and listing.json()["data"] == []


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/fine_tuning/jobs", '{"model": "embedded:tiny-llama", "training_file": "f", "seed": true}', "seed"),
        ("/uploads", '{"filename": "a.jsonl", "purpose": "fine-tune", "bytes": true}', "bytes"),
        ("/uploads", '{"filename": "a.jsonl", "purpose": "fine-tune", "bytes": 1%s}' % ("0" * 4000), None),
        ("/uploads", '{"filename": {"a": 1}, "purpose": "fine-tune", "bytes": 10}', "filename"),
        ("/chat/completions", '{"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": true}',
         "max_tokens"),
        ("/chat/completions", '{"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": true}',
         "temperature"),
        ("/chat/completions", '{"model": "m", "messages": [{"role": "user", "content": "x"}], "seed": 1%s}'
         % ("0" * 30), None),
        ("/chat/completions", '{"model": "m", "messages": [{"role": "user", "content": "\\ud800"}]}',
         "messages[0].content"),
        ("/fine_tuning/jobs", '{"model": ' + "[" * 100000 + "]" * 100000 + "}", None),
    ],
)  # fmt: skip
def test_wrong_types_and_hostile_bodies_are_400s(serve, path: str, body: str, param: str | None):
    server = serve()
    response = httpx.post(f"{server.url}{path}", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_bodies_that_are_not_utf8_are_400s(serve):
    server = serve()
    for path in ("/fine_tuning/jobs", "/uploads", "/uploads/upload_000000000000000000000000/complete"):
        response = httpx.post(f"{server.url}{path}", content=b'{"model": "\xff\xfe"}')
        assert response.status_code == 400 and "UTF-8" in response.json()["error"]["message"], path


def test_one_bad_chat_request_fails_alone(serve, model_folder: Path):
    server = serve("--model", str(model_folder))
    model = str(model_folder)

    async def ask(client: httpx.AsyncClient, content: str) -> httpx.Response:
        body = {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 4}
        return await client.post(f"{server.url}/chat/completions", json=body, timeout=120)

    async def together() -> list[httpx.Response]:
        async with httpx.AsyncClient() as client:
            return await asyncio.gather(*(ask(client, text) for text in ["dog", "cat " * 50000, "owl", "ant"]))

    started = time.monotonic()
    good, huge, *others = asyncio.run(together())
    assert time.monotonic() - started < 60
    assert huge.status_code == 400 and "context" in huge.json()["error"]["message"]
    assert [r.status_code for r in [good, *others]] == [200, 200, 200]
    developer = {"model": model, "messages": [{"role": "developer", "content": "be brief"},
                                              {"role": "user", "content": "dog"}], "max_tokens": 2}  # fmt: skip
    assert httpx.post(f"{server.url}/chat/completions", json=developer, timeout=60).status_code == 200


def test_cancel_answers_at_once_and_the_job_ends_cancelled(serve):
    server = serve()
    file_id = _upload(server.url)
    early = _job(server.url, file_id, epochs=50)
    started = time.monotonic()
    answer = httpx.post(f"{server.url}/fine_tuning/jobs/{early['id']}/cancel", timeout=10)
    assert time.monotonic() - started < 2 and answer.json()["status"] == "cancelling"
    _wait(server.url, early["id"], {"cancelled"}, seconds=20)  # even while validating files: it stops at once
    running = _job(server.url, file_id, epochs=50)
    _wait(server.url, running["id"], {"running"})
    responsive = []
    for _ in range(5):
        httpx.post(f"{server.url}/fine_tuning/jobs/{running['id']}/pause" if not responsive else
                   f"{server.url}/models", timeout=10)  # fmt: skip
        begun = time.monotonic()
        httpx.get(f"{server.url}/models", timeout=10)
        responsive.append(time.monotonic() - begun)
    assert max(responsive) < 2


def test_jobs_beyond_the_worker_limit_wait_queued(serve, tmp_path: Path):
    server = serve("--max-workers", "1")
    file_id = _upload(server.url)
    jobs = [_job(server.url, file_id, epochs=1) for _ in range(3)]
    seen_training = 0
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        statuses = [httpx.get(f"{server.url}/fine_tuning/jobs/{j['id']}").json()["status"] for j in jobs]
        seen_training = max(seen_training, sum(s in ("running", "validating_files") for s in statuses))
        assert sum(s in ("running", "validating_files") for s in statuses) <= 1, statuses
        if all(s == "succeeded" for s in statuses):
            break
        time.sleep(0.1)
    assert seen_training == 1 and all(s == "succeeded" for s in statuses)


def test_clients_see_ids_never_server_paths_and_a_deleted_file_does_not_fail_its_job(serve):
    server = serve()
    file_id = _upload(server.url)
    job = _job(server.url, file_id)
    assert httpx.delete(f"{server.url}/files/{file_id}").status_code == 200
    done = _wait(server.url, job["id"], {"succeeded", "failed"})
    assert done["status"] == "succeeded", done["error"]
    events = httpx.get(f"{server.url}/fine_tuning/jobs/{job['id']}/events?limit=100").json()["data"]
    leaks = [e["message"] for e in events if str(server.home) in e["message"] or re.search(r"(^|\s)/\w", e["message"])]
    assert events and not leaks


def test_a_trickling_client_is_cut_off(serve):
    server = serve("--body-seconds", "1")
    host, port = "127.0.0.1", int(server.url.split(":")[2].split("/")[0])
    with socket.create_connection((host, port), timeout=10) as conn:
        conn.sendall(
            b"POST /v1/uploads HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n"
        )
        started = time.monotonic()
        answer = b""
        for _ in range(20):
            try:
                conn.sendall(b" ")
            except OSError:
                break
            conn.settimeout(0.5)
            try:
                answer += conn.recv(4096)
            except TimeoutError:
                continue
            if answer:
                break
    assert b" 408 " in answer.split(b"\r\n")[0] and time.monotonic() - started < 5


@pytest.mark.parametrize("key", [" ", "short-key"])
def test_a_blank_or_short_key_is_refused(key: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FTO_SERVE_API_KEY", key)
    done = run_fto("serve", "--port", "1", timeout=60)
    assert done.returncode == 2 and "at least 16 characters" in done.stderr and "Traceback" not in done.stderr


def test_one_broken_job_never_takes_the_listing_down(serve):
    server = serve()
    file_id = _upload(server.url)
    broken, fine = _job(server.url, file_id), _job(server.url, file_id)
    _wait(server.url, broken["id"], {"succeeded", "failed"})
    _wait(server.url, fine["id"], {"succeeded", "failed"})
    for path in (server.home / "backends" / "serve" / "jobs" / broken["id"]).iterdir():
        if path.is_file():
            path.unlink()  # its folder damaged: the job can no longer be shown
    listing = httpx.get(f"{server.url}/fine_tuning/jobs")
    assert listing.status_code == 200 and [j["id"] for j in listing.json()["data"]] == [fine["id"]]


def test_a_client_trickling_its_headers_is_cut_off(serve):
    server = serve("--header-seconds", "1")
    port = int(server.url.split(":")[2].split("/")[0])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        started = time.monotonic()
        closed = False
        for byte in b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 40:
            try:
                conn.sendall(bytes([byte]))
                conn.settimeout(0.2)
                if conn.recv(1) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except OSError:
                closed = True
                break
    assert closed and time.monotonic() - started < 5
    assert httpx.get(f"{server.url}/models", timeout=10).status_code == 200  # others are served meanwhile
