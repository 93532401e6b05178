"""schemathesis fuzzes `fto serve` against OpenAI's spec (the subset the tests keep): no 5xx, answers that conform,
and a server that still answers afterwards. Bounded: a fixed number of examples per operation, derandomized.

Known deviations are those of the normalised spec test_openapi.py validates against, each with its reason there: the
job status enum gains "paused" (the pause endpoint's own example answers it) and "cancelling" (fto serve's answer to
a cancel until the worker stops). Nothing else is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from fto.orchestrator.serve.routes import ROUTES
from tests.orchestrator.serve.test_openapi import spec as normalised_spec
from tests.serving import ServeProcess

pytestmark = pytest.mark.slow  # a server and a few hundred requests

EXAMPLES = 60  # per operation
# The operations fto serve implements (the spec subset also holds what it does not, e.g. /responses).
SERVED = {(method, re.sub(r"\{\w+(:\w+)?\}", "{}", route.path)) for route in ROUTES for method in route.methods or ()}


def _served(context: object) -> bool:
    operation = context.operation  # type: ignore[attr-defined]
    return (operation.method.upper(), re.sub(r"\{\w+\}", "{}", operation.path)) in SERVED


schema = schemathesis.openapi.from_dict(normalised_spec()).include(_served)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    started = ServeProcess(tmp_path_factory.mktemp("fuzz"), "--model", "embedded:tiny-llama")
    yield started
    started.stop()


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    phases=[Phase.generate],  # generated cases only: the spec's own examples number in the thousands
    suppress_health_check=list(HealthCheck),
)
def test_fto_serve_answers_every_fuzzed_request_within_the_spec(case: schemathesis.Case, server: ServeProcess):
    response = case.call(base_url=server.url, timeout=30)
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])


def test_the_server_still_answers_after_the_fuzzing(server: ServeProcess):
    assert httpx.get(f"{server.url}/models", timeout=10).status_code == 200
