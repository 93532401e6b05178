"""`fto sim serve`, the demo provider every new user meets, answers malformed requests with OpenAI-style 400s, never
a 500, and answers a large upload (issue 38, item 15). Each case failed before its fix."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import ANIMALS

CASES = [
    ("POST", "/v1/jobs", b"{bad", None),
    ("POST", "/v1/jobs", b"[1,2]", None),
    ("POST", "/v1/jobs", b'{"training_file": ["x"]}', "training_file"),
    ("POST", "/v1/chat/completions", b'{"messages": "hi"}', "messages"),
    ("POST", "/v1/chat/completions", b'{"messages": [1, 2]}', "messages"),
    ("POST", "/v1/chat/completions", b"\xff\xfe", None),
    ("POST", "/v1/chat/completions", b"[]", None),
    ("POST", "/v1/jobs", b'{"training_file": "FILE", "metadata": "x"}', "metadata"),
    ("POST", "/v1/jobs", b'{"training_file": "FILE", "duration": NaN}', None),
    ("POST", "/v1/jobs", b'{"training_file": "FILE", "duration": -1}', "duration"),
    ("POST", "/v1/jobs", b'{"training_file": "FILE", "duration": "5"}', "duration"),
    ("GET", "/v1/jobs/JOB?after_event=abc", b"", "after_event"),
    ("GET", "/v1/jobs/JOB?after_metric=-3", b"", "after_metric"),
    ("GET", "/v1/jobs?limit=10&updated_after=nan", b"", "updated_after"),
]


@pytest.mark.parametrize(("method", "path", "body", "param"), CASES)
def test_a_malformed_request_is_a_400_naming_the_field(sim_server, method: str, path: str, body: bytes, param):
    server = sim_server()
    file_id = httpx.post(f"{server.url}/v1/files", content=ANIMALS.read_bytes()).json()["id"]
    job = httpx.post(f"{server.url}/v1/jobs", json={"training_file": file_id}).json()["id"]
    raw = body.replace(b"FILE", file_id.encode())
    response = httpx.request(method, server.url + path.replace("JOB", job), content=raw, timeout=10)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["message"] and error["type"] == "invalid_request_error" and error["param"] == param


def test_a_100_mb_upload_is_answered(sim_server):
    server = sim_server()
    line = ANIMALS.read_bytes().splitlines(keepends=True)[0]
    big = line * (100 * 2**20 // len(line))
    response = httpx.post(f"{server.url}/v1/files", content=big, timeout=60)
    assert response.status_code == 200 and response.json()["bytes"] == len(big)
    too_big = httpx.post(f"{server.url}/v1/files", content=b"x" * (257 * 2**20), timeout=60)
    assert too_big.status_code == 413
