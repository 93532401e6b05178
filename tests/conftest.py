"""Shared fixtures: an isolated FTO_HOME per test, the shared public datasets, job files in tmp."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

# A killed poller's jobs are taken over when its leases lapse: 8 s here, not 30, so the tests that kill one wait
# less (renewed every 8/3 s, so a live but busy poller keeps its jobs). Set before fto is imported anywhere.
os.environ["FTO_LEASE_SECONDS"] = "8"
REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
SHARED_DATA = FIXTURES / "data"  # public datasets cut to the rows the tests use (see its SOURCES.md)
QUICKSTART = REPO / "examples" / "quickstart.yaml"
ANIMALS = REPO / "examples" / "data" / "animals.jsonl"
FTO = [sys.executable, "-m", "fto.orchestrator"]


@pytest.fixture(autouse=True)
def fto_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "fto-home"
    monkeypatch.setenv("FTO_HOME", str(home))
    return home


@pytest.fixture
def write_job(tmp_path: Path):
    """Write a job file built from the quickstart, with overrides merged in (None deletes a key)."""

    def write(overrides: dict | None = None, text: str | None = None, name: str = "job.yaml") -> Path:
        path = tmp_path / name
        if text is None:
            spec = yaml.safe_load(QUICKSTART.read_text())
            spec["data"]["train"] = str(ANIMALS)
            _merge(spec, overrides or {})
            text = yaml.safe_dump(spec, sort_keys=False)
        path.write_text(text)
        return path

    return write


def _merge(into: dict, overrides: dict) -> None:
    for key, value in overrides.items():
        if value is None:
            into.pop(key, None)
        elif isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def run_fto(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess, as a user runs it."""
    return subprocess.run([*FTO, *args], capture_output=True, text=True, timeout=timeout, env=os.environ.copy())


@pytest.fixture(scope="session")
def postgres_server():
    """One throwaway PostgreSQL cluster for the test session (skipped where PostgreSQL is not installed)."""
    from tests.postgres import PostgresServer, binaries

    if binaries() is None:
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    pytest.importorskip("psycopg", reason="the postgres extra is not installed")
    server = PostgresServer()
    yield server
    server.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, monkeypatch: pytest.MonkeyPatch) -> str:
    """The store's engine, for tests that run on both: PostgreSQL gets a fresh database through FTO_STORE."""
    if request.param == "postgresql":
        server = request.getfixturevalue("postgres_server")
        monkeypatch.setenv("FTO_STORE", server.new_database())
    return request.param


def model_scores(report: dict[str, Any]) -> dict[str, dict[str, float]]:
    """`fto compare --json`'s models as label → scorer → value."""
    return {m["target"]["label"]: {s: v["value"] for s, v in m["scores"].items()} for m in report["models"]}


def models_by_label(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`fto compare --json`'s models by the label reports show."""
    return {m["target"]["label"]: m for m in report["models"]}
