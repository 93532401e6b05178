"""`fto serve` refuses what it must: strangers off loopback, oversize bodies, ids that try to leave the folder,
and training files with a bad line (named, before any job starts)."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.conftest import ANIMALS, run_fto

pytestmark = pytest.mark.slow  # starts fto serve for each test


def test_a_key_is_required_off_loopback(fto_home):
    result = run_fto("serve", "--host", "0.0.0.0", "--port", "1", timeout=60)
    assert result.returncode != 0
    assert "FTO_SERVE_API_KEY" in result.stderr and "Traceback" not in result.stderr


def test_bearer_key_is_checked_and_never_echoed(serve):
    server = serve(env={"FTO_SERVE_API_KEY": "sk-serve-secret-1234"})
    denied = httpx.get(f"{server.url}/models", headers={"Authorization": "Bearer wrong"})
    assert denied.status_code == 401
    assert denied.json()["error"]["code"] == "invalid_api_key" and "sk-serve" not in denied.text
    assert httpx.get(f"{server.url}/models").status_code == 401
    client = openai.OpenAI(base_url=server.url, api_key="sk-serve-secret-1234", max_retries=0)
    assert [m.id for m in client.models.list().data] == ["embedded:tiny-llama"]
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.url, api_key="nope", max_retries=0).files.list()


def test_oversize_bodies_are_refused_with_413(serve, tmp_path):
    server = serve("--max-file-mb", "1")
    big = tmp_path / "big.jsonl"
    big.write_bytes(ANIMALS.read_bytes() * 12)  # about 1.2 MB
    response = httpx.post(f"{server.url}/files", files={"file": big.open("rb")}, data={"purpose": "fine-tune"})
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"
    assert httpx.get(f"{server.url}/files").json()["data"] == []  # nothing was stored

    def chunked():  # no Content-Length: the limit is counted as the body streams in
        yield b'{"model": "x", "messages": [' + b" " * (17 * 1024 * 1024) + b"]}"

    streamed = httpx.post(
        f"{server.url}/chat/completions", content=chunked(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413


@pytest.mark.parametrize("file_id", ["..%2F..%2Ffto.db", "file-..", "file-%2E%2E%2Fx", "../serve"])
def test_file_ids_cannot_escape_the_data_folder(serve, file_id):
    server = serve()
    response = httpx.get(f"{server.url}/files/{file_id}/content")
    assert response.status_code == 404
    assert "error" in response.json()


def test_a_bad_training_line_is_named_and_no_job_starts(serve, tmp_path):
    server = serve()
    rows = ANIMALS.read_text().splitlines()
    broken = json.loads(rows[6])
    broken["messages"][-1]["role"] = "robot"
    rows[6] = json.dumps(broken)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(rows) + "\n")
    client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0)
    uploaded = client.files.create(file=bad.open("rb"), purpose="fine-tune")
    with pytest.raises(openai.BadRequestError) as caught:
        client.fine_tuning.jobs.create(model="embedded:tiny-llama", training_file=uploaded.id)
    error = caught.value.body
    assert error["param"] == "training_file"
    assert f"{uploaded.id}:7" in error["message"] and "role" in error["message"]
    assert client.fine_tuning.jobs.list().data == []
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.create(model="not-served", training_file=uploaded.id)


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/fine_tuning/jobs", [1], None),
        ("/fine_tuning/jobs", {"model": "embedded:tiny-llama", "method": "supervised"}, "method"),
        ("/fine_tuning/jobs", {"model": "embedded:tiny-llama", "method": {"type": "supervised", "supervised": [1]}},
         "method.supervised"),
        ("/fine_tuning/jobs", {"model": "embedded:tiny-llama", "method": {"type": "dpo", "dpo": {
            "hyperparameters": {"beta": 3}}}}, "method.dpo.hyperparameters.beta"),
        ("/fine_tuning/jobs", {"model": "embedded:tiny-llama", "training_file": "file-x", "seed": 1}, "training_file"),
        ("/fine_tuning/jobs", {"model": "embedded:tiny-llama", "training_file": "file-x",
                               "hyperparameters": {"n_epochs": 0}}, "hyperparameters.n_epochs"),  # the older form
        ("/chat/completions", {"model": "embedded:tiny-llama", "messages": "hi"}, "messages"),
        ("/chat/completions", {"model": "embedded:tiny-llama", "messages": [{"role": "robot", "content": "x"}]},
         "messages[0].role"),
        ("/chat/completions", {"model": "embedded:tiny-llama", "messages": [{"role": "user", "content": "x"}],
                               "seed": "x"}, "seed"),
        ("/uploads", {"purpose": "fine-tune", "bytes": "many"}, "bytes"),
    ],
)  # fmt: skip
def test_malformed_requests_get_a_400_naming_the_field(serve, path, body, param):
    server = serve()
    response = httpx.post(f"{server.url}{path}", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert httpx.get(f"{server.url}/fine_tuning/jobs").json()["data"] == []  # no job was started
