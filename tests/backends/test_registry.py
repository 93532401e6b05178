"""Backends are plugins: a package that declares an `fto.backends` entry point is used like a built-in one."""

import pytest

from fto.backends import registry
from fto.backends.local import LocalBackend
from fto.orchestrator.errors import ConfigError


def test_local_backend_is_registered_by_entry_point():
    assert "local" in registry.available()
    assert registry.backend_class("local") is LocalBackend


def test_unknown_backend_lists_what_is_installed():
    with pytest.raises(ConfigError, match=r"unknown backend 'nope' \(available: .*local"):
        registry.backend_class("nope")


def test_a_backend_without_rft_says_so_in_one_line_naming_those_that_offer_it(monkeypatch):
    from fto.orchestrator.errors import UnsupportedError
    from fto.schemas import BackendSection, JobSpec

    monkeypatch.setenv("TOGETHER_API_KEY", "together-test-never-sent")
    spec = JobSpec.model_validate(
        {"name": "rft", "method": "rft", "data": {"train": "x.jsonl"}, "rft": {"grader": "g"},
         "graders": [{"name": "g", "type": "string_check", "input": "{{ sample.output_text }}", "reference": "a",
                      "operation": "eq"}]}
    )  # fmt: skip
    with pytest.raises(UnsupportedError) as refused:
        registry.create("together", BackendSection()).check(spec)
    said = str(refused.value)
    assert "offers no reinforcement fine-tuning" in said and "\n" not in said
    assert all(name in said for name in ("bedrock", "fireworks", "local", "openai", "vertex"))
