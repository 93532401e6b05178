"""Security and faults, round 3 (issue 38), on `fto serve` as users start it: no request names a file, browsers'
cross-site requests are refused, one request cannot starve the engine, SIGTERM stops it, workers are reaped.
Each test failed before its fix."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import threading
import time
from pathlib import Path

import httpx
import pytest

from fto.backends.local.embedded import build
from tests.conftest import ANIMALS

pytestmark = pytest.mark.slow  # starts servers


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = [json.loads(line) for line in ANIMALS.read_text().splitlines()[:50]]
    return build(rows, 0, tmp_path_factory.mktemp("model") / "tiny")


def _root(server) -> str:
    return server.url.removesuffix("/v1")


@pytest.mark.parametrize(
    "path",
    [
        "/ui/data?path=/etc/passwd",
        "/ui/data/line?path=/etc/passwd&line=1",
        "/ui/data/line?path=%2Fetc%2Fpasswd&line=1",
        "/ui/data/files/..%2F..%2Fetc%2Fpasswd",
        "/ui/data/files/../../etc/passwd/line?line=1",
        "/ui/data/experiments/..%2F..%2Fetc/passwd/line?line=1",
        "/ui/data/experiments/x/train/line?line=1&path=/etc/passwd",
        "/ui/static/../../../../etc/passwd",
        "/ui/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    ],
)
def test_no_request_reads_a_file_the_store_does_not_reference(serve, path: str):
    server = serve()
    response = httpx.get(_root(server) + path)
    assert "root:x:0:0" not in response.text
    # the data index ignores the query (it lists what the store references); every other address is unknown
    assert response.status_code in (400, 404) or path.startswith("/ui/data?")


def test_a_foreign_host_header_is_refused_dns_rebinding(serve):
    server = serve()
    for path in ("/v1/models", "/ui/"):
        refused = httpx.get(_root(server) + path, headers={"host": f"attacker.example:{server.port}"})
        assert refused.status_code == 400 and "not allowed" in refused.json()["error"]["message"]
        assert httpx.get(_root(server) + path, headers={"host": f"localhost:{server.port}"}).status_code == 200


def test_allowed_hosts_flag_admits_a_named_host(serve):
    server = serve("--allowed-hosts", "fto.internal")
    assert httpx.get(server.url + "/models", headers={"host": "fto.internal"}).status_code == 200
    assert httpx.get(server.url + "/models", headers={"host": "localhost"}).status_code == 400


def test_cross_origin_state_changes_are_refused_and_same_origin_ones_pass(serve, tmp_path: Path):
    server = serve()
    attacker = {"origin": "http://attacker.example"}
    upload = httpx.post(server.url + "/files", files={"file": ANIMALS.open("rb")}, data={"purpose": "fine-tune"},
                        headers=attacker)  # fmt: skip
    assert upload.status_code == 403
    assert httpx.get(server.url + "/files").json()["data"] == []  # nothing stored
    site = {"sec-fetch-site": "cross-site"}
    assert httpx.post(server.url + "/chat/completions", json={}, headers=site).status_code == 403
    own = {"origin": f"http://127.0.0.1:{server.port}"}
    allowed = httpx.post(server.url + "/files", files={"file": ANIMALS.open("rb")}, data={"purpose": "fine-tune"},
                         headers=own)  # fmt: skip
    assert allowed.status_code == 200


def test_json_sent_as_text_plain_or_a_form_is_refused(serve):
    server = serve()
    body = json.dumps({"model": "embedded:tiny-llama", "messages": [{"role": "user", "content": "hi"}]})
    for media in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        response = httpx.post(server.url + "/chat/completions", content=body, headers={"content-type": media})
        assert response.status_code == 415, media


def test_every_answer_carries_the_browser_safety_headers(serve):
    server = serve()
    for path in ("/v1/models", "/ui/", "/v1/nothing-here"):
        headers = httpx.get(_root(server) + path).headers
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "script-src 'self'" in headers["content-security-policy"]


def test_one_request_may_not_ask_for_more_sequences_than_the_limit(serve, model_folder: Path):
    server = serve("--model", str(model_folder), "--max-seqs-per-request", "32")
    body = {"model": str(model_folder), "prompt": ["a"] * 8, "n": 5, "max_tokens": 4}
    response = httpx.post(server.url + "/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert "40 sequences" in error["message"] and "32" in error["message"] and error["param"] == "n"
    assert httpx.post(server.url + "/completions", json={**body, "n": 4}, timeout=60).status_code == 200


def _chat_seconds(url: str, model: str) -> float:
    started = time.perf_counter()
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "temperature": 0}
    response = httpx.post(url + "/chat/completions", json=body, timeout=120)
    assert response.status_code == 200, response.text
    return time.perf_counter() - started


def _large_request(url: str, model: str, seconds: float) -> None:
    """50 prompts × n 16 × 400 tokens, not streamed; the client leaves after `seconds`."""
    body = {"model": model, "prompt": ["tell me about animals"] * 50, "n": 16, "max_tokens": 400}
    with contextlib.suppress(httpx.TimeoutException):
        httpx.post(url + "/completions", json=body, timeout=seconds)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_short_request_is_answered_while_a_large_one_runs_and_a_leaving_client_cancels_it(serve, model_folder):
    server = serve("--model", str(model_folder), "--max-seqs-per-request", "800")
    model = str(model_folder)
    _chat_seconds(server.url, model)  # the model loaded
    idle = statistics.median(_chat_seconds(server.url, model) for _ in range(5))
    large = threading.Thread(target=_large_request, args=(server.url, model, 12.0))
    large.start()
    time.sleep(2)  # the large request is generating
    loaded = statistics.median(_chat_seconds(server.url, model) for _ in range(5))
    assert loaded < max(6 * idle, idle + 1.0), (idle, loaded)  # before: minutes, behind 800 sequences
    large.join()  # the client has gone away
    time.sleep(1.5)  # the engine's next steps see it
    before = _cpu_seconds(server.process.pid)
    time.sleep(2)
    busy = _cpu_seconds(server.process.pid) - before
    assert busy < 0.5, f"the server still computed {busy:.2f} s of CPU in 2 s after its client left"


def test_sigterm_stops_the_server_within_seconds_while_a_large_request_runs(serve, model_folder: Path):
    server = serve("--model", str(model_folder), "--max-seqs-per-request", "800")
    large = threading.Thread(target=_large_request, args=(server.url, str(model_folder), 30.0), daemon=True)
    large.start()
    time.sleep(3)
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(timeout=15)
    assert time.monotonic() - started < 8


def test_a_finished_fine_tuning_worker_leaves_no_zombie(serve):
    server = serve()
    file_id = httpx.post(server.url + "/files", files={"file": ANIMALS.open("rb")}, data={"purpose": "fine-tune"})
    body = {"model": "embedded:tiny-llama", "training_file": file_id.json()["id"],
            "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1}}}}  # fmt: skip
    job = httpx.post(server.url + "/fine_tuning/jobs", json=body, timeout=30).json()
    deadline = time.monotonic() + 180
    while httpx.get(f"{server.url}/fine_tuning/jobs/{job['id']}").json()["status"] != "succeeded":
        assert time.monotonic() < deadline
        time.sleep(0.5)
    (status,) = (server.home / "backends" / "serve" / "jobs").glob("*/status.json")
    worker = Path(f"/proc/{json.loads(status.read_text())['pid']}")
    deadline = time.monotonic() + 30
    while worker.exists() and time.monotonic() < deadline:  # exiting, then reaped by the server
        time.sleep(0.2)
    state = (worker / "stat").read_text().rsplit(")", 1)[1].split()[0] if worker.exists() else "reaped"
    assert state == "reaped", f"the worker is still {state} (Z: a zombie the server never waited for)"


@pytest.mark.parametrize("field", ["stream", "temperature", "top_p", "n", "stop", "seed", "max_tokens", "logprobs"])
def test_explicit_null_on_a_nullable_field_means_its_default(serve, model_folder: Path, field: str):
    server = serve("--model", str(model_folder))
    body = {"model": str(model_folder), "messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 2,
            field: None}  # fmt: skip
    response = httpx.post(server.url + "/chat/completions", json=body, timeout=60)
    assert response.status_code == 200, response.text


def test_a_wrong_type_is_named_as_the_type_the_field_takes(serve):
    server = serve()
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}
    error = httpx.post(server.url + "/chat/completions", json=body).json()["error"]
    assert error["param"] == "temperature" and "valid number" in error["message"] and "integer" not in error["message"]


def test_a_405_names_the_allowed_methods_and_a_bad_order_is_refused(serve):
    server = serve()
    refused = httpx.put(server.url + "/models")
    assert refused.status_code == 405 and set(refused.headers["allow"].split(", ")) == {"GET", "HEAD"}
    bad = httpx.get(server.url + "/files", params={"order": "sideways"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "order"


def test_file_content_is_sent_as_a_download_not_as_json(serve):
    server = serve()
    uploaded = httpx.post(server.url + "/files", files={"file": ANIMALS.open("rb")}, data={"purpose": "fine-tune"})
    content = httpx.get(f"{server.url}/files/{uploaded.json()['id']}/content")
    assert content.headers["content-type"] == "application/octet-stream"
    assert content.headers["content-disposition"].startswith("attachment")
    assert content.content == ANIMALS.read_bytes()
