"""OpenAI closes fine-tuning to new jobs after 2027-01-06: users hear it before, and are refused after, in one line."""

from __future__ import annotations

from fto.backends.openai import OpenAIBackend, OpenAIOptions
from tests.conftest import run_fto


def test_fto_backends_warns_with_the_dates_and_the_alternatives(monkeypatch):
    monkeypatch.setenv("FTO_TODAY", "2026-11-29")
    result = run_fto("backends")
    assert result.returncode == 0, result.stderr
    listing = " ".join(result.stdout.split())
    assert "no new fine-tuning jobs after 2027-01-06" in listing
    assert "2027-01-14" in listing
    assert "azure (the same models)" in listing and "fto migrate EXPERIMENT --to azure" in listing


def test_compatible_services_and_azure_hear_nothing_of_it(monkeypatch):
    monkeypatch.setenv("FTO_TODAY", "2026-11-29")
    assert OpenAIBackend.notice(OpenAIOptions()) is not None
    assert OpenAIBackend.notice(OpenAIOptions(base_url="http://127.0.0.1:9/v1")) is None
    assert OpenAIBackend.notice(OpenAIOptions(azure_endpoint="https://x.openai.azure.com")) is None


def test_after_the_last_day_a_job_for_openai_is_refused_before_anything_is_recorded(monkeypatch, write_job):
    monkeypatch.setenv("FTO_TODAY", "2027-01-07")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used")
    job = write_job({"backends": {"openai": {"model": "gpt-4o-mini-2024-07-18"}}})
    result = run_fto("submit", str(job), "--backend", "openai")
    assert result.returncode != 0
    assert "OpenAI accepts no new fine-tuning jobs since 2027-01-06" in result.stderr
    assert "Traceback" not in result.stderr
    assert "experiment" not in result.stdout  # nothing was recorded or sent
    listed = run_fto("backends")
    assert "since 2027-01-06" in listed.stdout


def test_a_bad_fake_date_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("FTO_TODAY", "someday")
    result = run_fto("backends")
    assert "FTO_TODAY='someday' is not a date" in result.stdout + result.stderr
