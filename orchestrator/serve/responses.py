"""Answers of `fto serve`, built as the openai SDK's own typed models, so they are what OpenAI's clients expect."""

from __future__ import annotations

from typing import Any, Literal

from openai.types import Completion, CompletionChoice
from openai.types.completion_choice import Logprobs
from openai.types.fine_tuning import FineTuningJob, ReinforcementMethod
from openai.types.fine_tuning.fine_tuning_job import Method
from openai.types.graders import PythonGrader, ScoreModelGrader, StringCheckGrader, TextSimilarityGrader
from openai.types.graders.multi_grader import Graders, MultiGrader
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse

from fto.orchestrator.serve.errors import Invalid


class NamedPartsMultiGrader(MultiGrader):
    """MultiGrader whose `graders` is a map of named graders, as the service takes it (the SDK's types and the spec
    say one grader: openai/openai-java#647, openai/openai-python#3918)."""

    graders: dict[str, Graders]  # type: ignore[assignment]


class NamedPartsReinforcementMethod(ReinforcementMethod):
    """ReinforcementMethod whose multi grader has named parts."""

    grader: StringCheckGrader | TextSimilarityGrader | PythonGrader | ScoreModelGrader | NamedPartsMultiGrader


class NamedPartsMethod(Method):
    """The job's method, with RFT's multi grader as the service takes it."""

    reinforcement: NamedPartsReinforcementMethod | None = None


class PausableFineTuningJob(FineTuningJob):
    """FineTuningJob, whose status may also be "paused" (OpenAI's pause endpoint answers it, the SDK's enum lacks
    it) or "cancelling" (a cancel was asked and the worker is stopping), and whose RFT multi grader has named
    parts."""

    status: Literal[  # type: ignore[assignment]
        "validating_files", "queued", "running", "succeeded", "failed", "cancelled", "paused", "cancelling"
    ]
    method: NamedPartsMethod | None = None


class EchoLogprobs(Logprobs):
    """Logprobs, whose first echoed prompt token has none (`null`, as OpenAI's API answers; the SDK's types and
    the spec say numbers only)."""

    token_logprobs: list[float | None] | None = None  # type: ignore[assignment]
    top_logprobs: list[dict[str, float] | None] | None = None  # type: ignore[assignment]


class EchoChoice(CompletionChoice):
    """CompletionChoice with EchoLogprobs, whose finish_reason is null until a streamed choice ends (as OpenAI
    streams it; the spec documents only whole answers)."""

    logprobs: EchoLogprobs | None = None
    finish_reason: Literal["stop", "length", "content_filter"] | None  # type: ignore[assignment]


class EchoCompletion(Completion):
    """Completion with EchoLogprobs."""

    choices: list[EchoChoice]  # type: ignore[assignment]


def as_openai(model: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    """`data` validated by the openai SDK's model of that object, as JSON-ready data."""
    return model.model_validate(data).model_dump(mode="json", exclude_unset=True)


def respond(model: type[BaseModel], data: dict[str, Any]) -> JSONResponse:
    """One API object."""
    return JSONResponse(as_openai(model, data))


def respond_list(
    model: type[BaseModel],
    items: list[dict[str, Any]],
    has_more: bool,
    with_ids: bool = False,
    no_id: str | None = None,
) -> JSONResponse:
    """A list page of API objects (`with_ids`: also first_id and last_id, as files and checkpoints have; `no_id`
    stands for them on an empty page: the spec types the files list's as strings, the checkpoints' as nullable)."""
    body: dict[str, Any] = {"object": "list", "data": [as_openai(model, item) for item in items], "has_more": has_more}
    if with_ids:
        body["first_id"] = items[0]["id"] if items else no_id
        body["last_id"] = items[-1]["id"] if items else no_id
    return JSONResponse(body)


def page(items: list[dict[str, Any]], request: Request, default_limit: int) -> tuple[list[dict[str, Any]], bool]:
    """The page after the `after` id, at most `limit` long; and whether more follow."""
    after = request.query_params.get("after")
    raw_limit = request.query_params.get("limit", str(default_limit))
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 10000:
        raise Invalid("limit must be an integer from 1 to 10000", "limit")
    limit = int(raw_limit)
    if after:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    return items[:limit], len(items) > limit
