"""A stateful Nebius Token Factory on 127.0.0.1 for the `nebius` backend's tests: OpenAI's fine-tuning wire API,
checked against OpenAI's published spec (tests/fixtures/openai-openapi), with the supervised hyperparameters
replaced by the ones Nebius's API reference documents for `POST /v1/fine_tuning/jobs`
(docs.tokenfactory.nebius.com/api-reference/fine-tuning/create-a-fine-tuning-job, read 2026-12-07): no others
accepted. Nebius publishes no OpenAPI file of its own."""

from __future__ import annotations

import copy

from starlette.requests import Request

from tests.backends.openai_wire import OpenAIWire
from tests.conftest import FIXTURES
from tests.openapi import Spec

MODELS = ("meta-llama/Meta-Llama-3.1-8B-Instruct", "meta-llama/Llama-3.3-70B-Instruct")
NUMBER, INTEGER, FLAG = {"type": "number", "minimum": 0}, {"type": "integer", "minimum": 1}, {"type": "boolean"}
HYPERPARAMETERS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "batch_size": INTEGER, "learning_rate": {"type": "number", "exclusiveMinimum": 0}, "n_epochs": INTEGER,
        "warmup_ratio": NUMBER, "weight_decay": NUMBER, "packing": FLAG, "max_grad_norm": NUMBER,
        "context_length": INTEGER, "lora": FLAG, "lora_r": INTEGER, "lora_alpha": NUMBER, "lora_dropout": NUMBER,
    },
}  # fmt: skip


def nebius_spec() -> Spec:
    spec = Spec(FIXTURES / "openai-openapi" / "openapi-subset.json", base="/v1")
    spec.document = copy.deepcopy(spec.document)
    spec.document["components"]["schemas"]["FineTuneSupervisedHyperparameters"] = HYPERPARAMETERS
    return spec


class Nebius(OpenAIWire):
    """Files, fine-tuning jobs and chat under /v1, with a bearer key."""

    def __init__(self, key: str):
        super().__init__(nebius_spec(), "/v1", MODELS)
        self.key = key

    def authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.key}"

    def chat(self, model, body):  # type: ignore[no-untyped-def]
        fine_tuned = {j.fine_tuned_model for j in self.jobs.values() if j.fine_tuned_model}
        if model not in fine_tuned | self.models:
            raise ValueError(f"model {model} is not served")
        return super().chat(model, body)
