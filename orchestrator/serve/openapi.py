"""`GET /openapi.json`: the OpenAI subset `fto serve` implements, with fto's own limits.

Built from what the server itself runs on, so it cannot drift from it: request bodies are the strict models of
requests.py (n ≤ 16, max_tokens ≤ 4,096, …), answers the openai SDK's typed models the routes build them as.
schemathesis fuzzes the server from this document in the test suite.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from openai.types import FileDeleted, FileObject, Model, Upload
from openai.types.chat import ChatCompletion
from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent
from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint
from openai.types.responses import Response
from openai.types.uploads import UploadPart
from pydantic import BaseModel, TypeAdapter

from fto.orchestrator.serve import requests
from fto.orchestrator.serve.responses import EchoCompletion

REF = "#/components/schemas/{model}"
JSON_LIST = "list"  # a page: {"object": "list", "data": [...], "has_more"}
ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["message", "type"], "properties": {
        "message": {"type": "string"}, "type": {"type": "string"},
        "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}}}},
}  # fmt: skip
LIMIT = {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 10000}}
AFTER = {"name": "after", "in": "query", "schema": {"type": "string"}}
ORDER = {"name": "order", "in": "query", "schema": {"type": "string", "enum": ["asc", "desc"]}}

# (method, path, request body model or "multipart", answer model, a list of them?, query parameters)
OPERATIONS: list[tuple[str, str, Any, type[BaseModel] | None, bool, list[dict[str, Any]]]] = [
    ("post", "/files", "multipart", FileObject, False, []),
    (
        "get",
        "/files",
        None,
        FileObject,
        True,
        [LIMIT, AFTER, ORDER, {"name": "purpose", "in": "query", "schema": {"type": "string"}}],
    ),
    ("get", "/files/{file_id}", None, FileObject, False, []),
    ("delete", "/files/{file_id}", None, FileDeleted, False, []),
    ("get", "/files/{file_id}/content", None, None, False, []),
    ("post", "/uploads", requests.CreateUpload, Upload, False, []),
    ("post", "/uploads/{upload_id}/parts", "multipart", UploadPart, False, []),
    ("post", "/uploads/{upload_id}/complete", requests.CompleteUpload, Upload, False, []),
    ("post", "/uploads/{upload_id}/cancel", None, Upload, False, []),
    ("post", "/fine_tuning/jobs", requests.CreateFineTuningJob, FineTuningJob, False, []),
    ("get", "/fine_tuning/jobs", None, FineTuningJob, True, [LIMIT, AFTER]),
    ("get", "/fine_tuning/jobs/{fine_tuning_job_id}", None, FineTuningJob, False, []),
    ("post", "/fine_tuning/jobs/{fine_tuning_job_id}/cancel", None, FineTuningJob, False, []),
    ("post", "/fine_tuning/jobs/{fine_tuning_job_id}/pause", None, FineTuningJob, False, []),
    ("post", "/fine_tuning/jobs/{fine_tuning_job_id}/resume", None, FineTuningJob, False, []),
    ("get", "/fine_tuning/jobs/{fine_tuning_job_id}/events", None, FineTuningJobEvent, True, [LIMIT, AFTER]),
    (
        "get",
        "/fine_tuning/jobs/{fine_tuning_job_id}/checkpoints",
        None,
        FineTuningJobCheckpoint,
        True,
        [LIMIT, AFTER],
    ),
    ("get", "/models", None, Model, True, []),
    ("get", "/models/{model}", None, Model, False, []),
    ("post", "/chat/completions", requests.ChatCompletionRequest, ChatCompletion, False, []),
    ("post", "/completions", requests.CompletionRequest, EchoCompletion, False, []),
    ("post", "/responses", requests.ResponseRequest, Response, False, []),
]


@cache
def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of `fto serve`'s `/v1` routes."""
    schemas: dict[str, Any] = {"ErrorResponse": ERROR}
    paths: dict[str, dict[str, Any]] = {}
    for method, path, body, answer, listed, query in OPERATIONS:
        operation: dict[str, Any] = {
            "operationId": _operation_id(method, path),
            "parameters": [*_path_parameters(path), *query],
            "responses": {"200": _answer(answer, listed, schemas), "4XX": _error()},
        }
        if body == "multipart":
            operation["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": {
                "type": "object", "required": ["file"], "properties": {
                    "file": {"type": "string", "format": "binary"}, "purpose": {"type": "string"},
                    "data": {"type": "string", "format": "binary"}}}}}}  # fmt: skip
        elif body is not None:
            operation["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": _schema(body, schemas, "validation")}}}  # fmt: skip
        paths.setdefault(f"/v1{path}", {})[method] = operation
    _fto_statuses(schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": "fto serve", "version": "1",
                 "description": "The OpenAI API subset fto serve implements, with its limits (docs/serve.md)."},
        "paths": paths,
        "components": {"schemas": schemas},
    }  # fmt: skip


def _schema(model: type[BaseModel], schemas: dict[str, Any], mode: str = "serialization") -> dict[str, Any]:
    found = TypeAdapter(model).json_schema(ref_template=REF, mode=mode)  # type: ignore[arg-type]
    schemas.update(found.pop("$defs", {}))
    name = f"{model.__name__}{'Request' if mode == 'validation' and not model.__name__.endswith('Request') else ''}"
    schemas[name] = found
    return {"$ref": REF.format(model=name)}


def _answer(model: type[BaseModel] | None, listed: bool, schemas: dict[str, Any]) -> dict[str, Any]:
    if model is None:  # a file's own bytes
        return {"description": "the file", "content": {"application/octet-stream": {"schema": {"type": "string"}}}}
    item = _schema(model, schemas)
    schema = (
        item
        if not listed
        else {
            "type": "object",
            "required": ["object", "data"],
            "properties": {
                "object": {"const": JSON_LIST},
                "data": {"type": "array", "items": item},
                "has_more": {"type": "boolean"},
            },
        }
    )
    return {"description": "OK", "content": {"application/json": {"schema": schema}}}  # fmt: skip


def _error() -> dict[str, Any]:
    return {"description": "refused, in OpenAI's error shape",
            "content": {"application/json": {"schema": {"$ref": REF.format(model="ErrorResponse")}}}}  # fmt: skip


def _path_parameters(path: str) -> list[dict[str, Any]]:
    return [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"\{(\w+)\}", path)]  # fmt: skip


def _operation_id(method: str, path: str) -> str:
    return method + "_" + re.sub(r"\W+", "_", path.replace("{", "by_").replace("}", "")).strip("_")


def _fto_statuses(schemas: dict[str, Any]) -> None:
    """fto's two job statuses beyond OpenAI's enum: `paused` (the pause endpoint's own example answers it) and
    `cancelling` (a cancel is answered at once, before the worker has stopped)."""
    status = schemas["FineTuningJob"]["properties"]["status"]
    status["enum"] = [*status["enum"], "paused", "cancelling"]
