"""Bedrock's Converse API on 127.0.0.1 (moto does not emulate bedrock-runtime): every request boto3 sends and every
answer given is checked against botocore's own service model for Converse (its input and output shapes), and
SigV4 signing is required. Custom models answer from their training data; base models do not know it."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

import botocore.session
from botocore.validate import ParamValidator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.loopback import Provider, Recall

OPERATION = botocore.session.get_session().get_service_model("bedrock-runtime").operation_model("Converse")


def shape_errors(value: dict[str, Any], output: bool) -> str:
    """botocore's report of what is wrong with `value` as a Converse request (or answer), or ''."""
    shape = OPERATION.output_shape if output else OPERATION.input_shape
    return str(ParamValidator().validate(value, shape).generate_report())


class Converse(Provider):
    """POST /model/{modelId}/converse."""

    def __init__(self) -> None:
        super().__init__()
        self.recall = Recall()
        self.base_models: set[str] = set()
        self.calls: list[dict[str, Any]] = []

    def error(self, status: int, message: str) -> Response:
        kind = {400: "ValidationException", 404: "ResourceNotFoundException"}.get(status, "ThrottlingException")
        return JSONResponse({"message": message}, status_code=status, headers={"x-amzn-ErrorType": kind})

    async def handle(self, request: Request) -> Response:
        parts = request.scope["raw_path"].decode().strip("/").split("/")  # the model id arrives %-encoded
        if request.method != "POST" or len(parts) != 3 or parts[0] != "model" or parts[2] != "converse":
            return self.reject(404, f"{request.method} {request.url.path}: no such route")
        if not request.headers.get("authorization", "").startswith("AWS4-HMAC-SHA256"):
            return self.reject(403, "Converse requests are SigV4-signed")
        model = unquote(parts[1])
        body = json.loads(await request.body())
        problems = shape_errors({"modelId": model, **body}, output=False)
        if problems:
            return self.reject(400, f"not a Converse request: {problems}")
        self.calls.append({"model": model, "body": body})
        if model not in self.base_models and model not in self.recall.learned:
            return self.error(404, f"model {model} not found or not provisioned")
        prompt = next((b["text"] for m in reversed(body["messages"]) if m["role"] == "user" for b in m["content"]), "")
        text = self.recall.answer(model, prompt)
        answer = {
            "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
            "stopReason": "end_turn",
            "usage": {
                "inputTokens": len(prompt.split()),
                "outputTokens": len(text.split()),
                "totalTokens": len(prompt.split()) + len(text.split()),
            },
            "metrics": {"latencyMs": 3},
        }
        problems = shape_errors(answer, output=True)
        if problems:
            self.violations.append(f"answer: {problems}")
        return JSONResponse(answer)
