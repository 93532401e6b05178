"""Every route of `fto serve`, every answer checked against OpenAI's own OpenAPI spec.

The spec is the subset tests/fixtures/extract_openapi_subset.py takes from openai/openai-openapi (paths fto serve
answers and the schemas they reference; source commit in its info.x-fto-source).
"""

from __future__ import annotations

import copy
import json
import re
import time
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from fto.orchestrator.serve import ServeConfig, create_app
from tests.conftest import ANIMALS, FIXTURES
from tests.openapi import normalise

pytestmark = pytest.mark.slow  # trains through fto serve

SPEC = FIXTURES / "openai-openapi" / "openapi-subset.json"


@cache
def spec() -> dict[str, Any]:
    raw = json.loads(SPEC.read_text(encoding="utf-8"))  # a missing file fails every test here: never a skip
    normalised = normalise(raw)
    # The pause endpoint's own example answers status "paused", which the job's status enum lacks (FACTS.md).
    normalised["components"]["schemas"]["FineTuningJob"]["properties"]["status"]["enum"].append("paused")
    # fto serve answers a cancel at once with "cancelling" (the worker stops at its next step); OpenAI lists none.
    normalised["components"]["schemas"]["FineTuningJob"]["properties"]["status"]["enum"].append("cancelling")
    return normalised


def check(response: httpx.Response, path: str, method: str) -> dict[str, Any] | None:
    """Validate a response against the spec's schema for this route and status (errors: ErrorResponse)."""
    operation = spec()["paths"][path][method]
    schema: dict[str, Any]
    if response.status_code < 400:
        content = operation["responses"][str(response.status_code)].get("content", {})
        found = content.get("application/json") or next(iter(content.values()))
        schema = found["schema"]
    else:
        schema = {"$ref": "#/components/schemas/ErrorResponse"}
    media = response.headers.get("content-type", "").split(";")[0]
    # The spec types a file's content as a string sent as application/json: the file's own text (JSONL).
    is_text = schema.get("type") == "string"
    body = response.json() if media == "application/json" and not is_text else response.text
    document = {**copy.deepcopy(schema), "components": spec()["components"]}
    errors = sorted(Draft202012Validator(document).iter_errors(body), key=lambda e: e.path)
    assert not errors, f"{method.upper()} {path} ({response.status_code}): " + "; ".join(
        f"{'/'.join(map(str, e.path))}: {e.message[:200]}" for e in errors[:5]
    )
    walked.add((method.upper(), path))
    return body if isinstance(body, dict) else None


walked: set[tuple[str, str]] = set()


def _routes(root: Path) -> set[tuple[str, str]]:
    app = create_app(ServeConfig(root=root, base_models=())).app.starlette  # type: ignore[attr-defined]
    found = set()
    for route in app.routes:
        if not route.path.startswith("/v1/"):
            continue  # the same endpoints under Azure OpenAI's paths
        path = re.sub(r"\{(\w+)(:\w+)?\}", "{x}", route.path.removeprefix("/v1"))
        found.update((m, path) for m in route.methods if m != "HEAD")
    return found


def _template(path: str) -> str:
    return re.sub(r"\{\w+\}", "{x}", path)


def test_every_route_answers_as_openais_spec_says(serve, tmp_path):
    server = serve()
    http = httpx.Client(base_url=server.url, timeout=60)

    def call(method: str, path: str, template: str, **kwargs: Any) -> tuple[httpx.Response, dict[str, Any] | None]:
        response = http.request(method, path, **kwargs)
        return response, check(response, template, method.lower())

    # files and uploads
    _, file = call("POST", "/files", "/files", files={"file": ANIMALS.open("rb")}, data={"purpose": "fine-tune"})
    assert file and file["bytes"] == ANIMALS.stat().st_size
    listed = call("GET", "/files", "/files")[1]
    assert listed and [f["id"] for f in listed["data"]] == [file["id"]]
    assert call("GET", f"/files/{file['id']}", "/files/{file_id}")[1] == file
    content, _ = call("GET", f"/files/{file['id']}/content", "/files/{file_id}/content")
    assert content.content == ANIMALS.read_bytes()
    data = ANIMALS.read_bytes()
    upload = call(
        "POST", "/uploads", "/uploads", json={"filename": "a.jsonl", "purpose": "fine-tune", "bytes": len(data),
                                              "mime_type": "application/jsonl"},
    )[1]  # fmt: skip
    assert upload and upload["status"] == "pending"
    parts = [
        call("POST", f"/uploads/{upload['id']}/parts", "/uploads/{upload_id}/parts", files={"data": chunk})[1]
        for chunk in (data[:40000], data[40000:])
    ]
    done = call(
        "POST",
        f"/uploads/{upload['id']}/complete",
        "/uploads/{upload_id}/complete",
        json={"part_ids": [p["id"] for p in parts if p]},
    )[1]
    assert done and done["status"] == "completed" and done["file"]["bytes"] == len(data)
    assert http.get(f"/files/{done['file']['id']}/content").content == data  # parts joined in order
    spare = call("POST", "/uploads", "/uploads", json={"filename": "b.jsonl", "purpose": "fine-tune", "bytes": 5,
                                                        "mime_type": "application/jsonl"})[1]  # fmt: skip
    assert spare
    cancelled = call("POST", f"/uploads/{spare['id']}/cancel", "/uploads/{upload_id}/cancel")[1]
    assert cancelled and cancelled["status"] == "cancelled"
    deleted = call("DELETE", f"/files/{done['file']['id']}", "/files/{file_id}")[1]
    assert deleted == {"id": done["file"]["id"], "object": "file", "deleted": True}

    # a job that runs to the end: events, checkpoints, the fine-tuned model, chat completions
    method = {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3, "batch_size": 16}}}
    job = call(
        "POST",
        "/fine_tuning/jobs",
        "/fine_tuning/jobs",
        json={"model": "embedded:tiny-llama", "training_file": file["id"], "method": method, "suffix": "walk",
              "metadata": {"purpose": "walk"}, "seed": 3},
    )[1]  # fmt: skip
    assert job and job["status"] in ("queued", "validating_files", "running")
    deadline = time.monotonic() + 120
    while job["status"] not in ("succeeded", "failed", "cancelled") and time.monotonic() < deadline:
        time.sleep(0.5)
        job = call("GET", f"/fine_tuning/jobs/{job['id']}", "/fine_tuning/jobs/{fine_tuning_job_id}")[1] or job
    assert job["status"] == "succeeded", job["error"]
    assert job["fine_tuned_model"].startswith("ft:embedded:tiny-llama:fto-serve:walk:")
    # as OpenAI reports them once a job runs: the values "auto" became, not "auto"
    assert job["hyperparameters"] == {"n_epochs": 3, "batch_size": 16, "learning_rate_multiplier": 1.0}
    steps = [e["message"] for e in http.get(f"/fine_tuning/jobs/{job['id']}/events", params={"limit": 1000}).json()
             ["data"] if e["message"].startswith("checkpoint step-")]  # fmt: skip
    assert len(steps) == len(set(steps))  # each checkpoint told once
    events = call("GET", f"/fine_tuning/jobs/{job['id']}/events", "/fine_tuning/jobs/{fine_tuning_job_id}/events",
                  params={"limit": 5})[1]  # fmt: skip
    assert events and len(events["data"]) == 5 and events["has_more"]
    older = http.get(f"/fine_tuning/jobs/{job['id']}/events", params={"after": events["data"][-1]["id"]}).json()
    assert not {e["id"] for e in older["data"]} & {e["id"] for e in events["data"]}  # pages do not overlap
    checkpoints = call(
        "GET", f"/fine_tuning/jobs/{job['id']}/checkpoints", "/fine_tuning/jobs/{fine_tuning_job_id}/checkpoints"
    )[1]
    assert checkpoints and checkpoints["data"][0]["step_number"] >= checkpoints["data"][-1]["step_number"]
    jobs = call("GET", "/fine_tuning/jobs", "/fine_tuning/jobs", params={"metadata[purpose]": "walk"})[1]
    assert jobs and [j["id"] for j in jobs["data"]] == [job["id"]]
    assert http.get("/fine_tuning/jobs", params={"metadata[purpose]": "other"}).json()["data"] == []
    models = call("GET", "/models", "/models")[1]
    assert models and job["fine_tuned_model"] in {m["id"] for m in models["data"]}
    one = call("GET", f"/models/{job['fine_tuned_model']}", "/models/{model}")[1]
    assert one and one["owned_by"] == "org-fto-serve"
    chat = call(
        "POST",
        "/chat/completions",
        "/chat/completions",
        json={"model": job["fine_tuned_model"], "messages": [{"role": "user", "content": "dog"}], "max_tokens": 4},
    )[1]
    assert (
        chat and chat["usage"]["completion_tokens"] <= 4 and isinstance(chat["choices"][0]["message"]["content"], str)
    )
    text = call("POST", "/completions", "/completions", json={"model": job["fine_tuned_model"], "prompt": "dog",
                "max_tokens": 4, "logprobs": 2})[1]  # fmt: skip
    assert text and len(text["choices"][0]["logprobs"]["tokens"]) <= text["usage"]["completion_tokens"] <= 4
    response = call("POST", "/responses", "/responses", json={"model": job["fine_tuned_model"], "input": "dog",
                    "max_output_tokens": 16})[1]  # fmt: skip
    assert response and response["output"][0]["content"][0]["type"] == "output_text"

    # a long job: pause, resume, cancel
    long = {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 50}}}
    running = http.post("/fine_tuning/jobs", json={"model": "embedded:tiny-llama", "training_file": file["id"],
                                                   "method": long}).json()  # fmt: skip
    while http.get(f"/fine_tuning/jobs/{running['id']}").json()["status"] != "running":
        time.sleep(0.2)
    paused = call("POST", f"/fine_tuning/jobs/{running['id']}/pause", "/fine_tuning/jobs/{fine_tuning_job_id}/pause")
    assert paused[1] and paused[1]["status"] == "paused"
    resumed = call(
        "POST", f"/fine_tuning/jobs/{running['id']}/resume", "/fine_tuning/jobs/{fine_tuning_job_id}/resume"
    )[1]
    assert resumed and resumed["status"] in ("queued", "validating_files", "running")
    stopped = call(
        "POST", f"/fine_tuning/jobs/{running['id']}/cancel", "/fine_tuning/jobs/{fine_tuning_job_id}/cancel"
    )[1]
    assert stopped and stopped["status"] == "cancelling"  # answered at once; the worker stops at its next step
    while http.get(f"/fine_tuning/jobs/{running['id']}").json()["status"] != "cancelled":
        time.sleep(0.2)

    # errors come in OpenAI's shape too
    missing, body = call("GET", "/files/file-000000000000000000000000", "/files/{file_id}")
    assert missing.status_code == 404 and body and "No such File" in body["error"]["message"]
    bad, body = call("POST", "/fine_tuning/jobs", "/fine_tuning/jobs", json={"model": "embedded:tiny-llama",
                     "training_file": file["id"], "method": {"type": "supervised", "supervised": {
                         "hyperparameters": {"n_epochs": 51}}}})  # fmt: skip
    assert bad.status_code == 400 and body and body["error"]["param"] == "method.supervised.hyperparameters.n_epochs"

    spec_paths = {(m, _template(p)) for m, p in walked}
    routes = _routes(tmp_path / "app")
    assert routes <= spec_paths, f"routes not walked: {routes - spec_paths}"


def test_spec_normalisation_keeps_the_specs_own_examples_valid():
    """The rewrite is faithful: the spec's example job object validates after it."""
    example = json.loads(spec()["components"]["schemas"]["FineTuningJobCheckpoint"]["x-oaiMeta"]["example"])
    document = {"$ref": "#/components/schemas/FineTuningJobCheckpoint", "components": spec()["components"]}
    assert not list(Draft202012Validator(document).iter_errors(example))
    pending = {"id": "upload_1", "object": "upload", "bytes": 1, "created_at": 1, "expires_at": 2, "filename": "a",
               "purpose": "fine-tune", "status": "pending", "file": None}  # fmt: skip
    upload = {"$ref": "#/components/schemas/Upload", "components": spec()["components"]}
    assert not list(Draft202012Validator(upload).iter_errors(pending))  # `allOf [..., nullable]` allows null
    bad = {"learning_rate_multiplier": 0}  # exclusiveMinimum 0, rewritten from the 3.0 boolean form
    hyper = {
        "$ref": "#/components/schemas/FineTuningJob/properties/hyperparameters",
        "components": spec()["components"],
    }
    assert list(Draft202012Validator(hyper).iter_errors(bad))
