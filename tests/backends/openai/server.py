"""OpenAI's fine-tuning API on 127.0.0.1, every request and answer checked against OpenAI's published spec
(tests/fixtures/openai-openapi): the experiment `fto migrate` moves away from."""

from __future__ import annotations

from starlette.requests import Request

from tests.backends.openai_wire import OpenAIWire
from tests.conftest import FIXTURES
from tests.openapi import Spec

SPEC = Spec(FIXTURES / "openai-openapi" / "openapi-subset.json", base="/v1")


class OpenAIService(OpenAIWire):
    """Files, fine-tuning jobs and chat under /v1, with a bearer key."""

    def __init__(self, key: str):
        super().__init__(SPEC, "/v1", ("gpt-4o-mini-2024-07-18", "gpt-4.1-mini-2025-04-14"))
        self.key = key

    def authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.key}"
