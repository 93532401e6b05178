"""Both servers publish an OpenAPI document, and schemathesis fuzzes each from it on every run of the suite (issue
38, item 16): `fto serve`'s OpenAI subset with its own limits, and the dashboard's JSON API. Bounded and seeded."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from fto.orchestrator.serve.openapi import document
from fto.orchestrator.ui.openapi import DOCUMENT as UI_DOCUMENT
from tests.serving import ServeProcess

pytestmark = pytest.mark.slow  # a server and a few hundred requests

EXAMPLES = 25  # per operation
FUZZED = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    started = ServeProcess(tmp_path_factory.mktemp("published"))
    yield started
    started.stop()


def test_each_server_serves_its_document(server: ServeProcess):
    root = server.url.removesuffix("/v1")
    assert httpx.get(f"{root}/openapi.json").json() == document()
    assert httpx.get(f"{root}/ui/openapi.json").json() == UI_DOCUMENT
    assert "/v1/chat/completions" in document()["paths"] and "/api/jobs/{id}/loss" in UI_DOCUMENT["paths"]


serve_schema = schemathesis.openapi.from_dict(document())
ui_schema = schemathesis.openapi.from_dict(UI_DOCUMENT)


@serve_schema.parametrize()
@FUZZED
def test_fto_serve_keeps_to_its_published_document(case: schemathesis.Case, server: ServeProcess):
    response = case.call(base_url=server.url.removesuffix("/v1"), timeout=30)
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])


@ui_schema.parametrize()
@FUZZED
def test_the_dashboard_keeps_to_its_published_document(case: schemathesis.Case, server: ServeProcess):
    response = case.call(base_url=server.url.removesuffix("/v1") + "/ui", timeout=30)
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance, status_code_conformance])


def test_both_still_answer_after_the_fuzzing(server: ServeProcess):
    root = server.url.removesuffix("/v1")
    assert httpx.get(f"{root}/v1/models").status_code == 200
    assert httpx.get(f"{root}/ui/api/experiments").status_code == 200
