"""Models users already have: a folder, or the Hugging Face cache (read offline, never downloaded)."""

import os
import time

import pytest

from fto.backends import registry
from fto.backends.local.embedded import build
from fto.orchestrator.data.load import read_dataset
from fto.schemas import BackendSection, JobSpec, JobStatus
from tests.conftest import ANIMALS

pytestmark = pytest.mark.slow  # loads and trains models

ROWS = read_dataset(str(ANIMALS))[:48]


def _run(tmp_path, model: str, env: dict[str, str]) -> object:
    os.environ.update(env)
    spec = JobSpec.model_validate(
        {
            "name": "t",
            "data": {"train": str(ANIMALS)},
            "hyperparameters": {"epochs": 1, "batch_size": 16},
            "backends": {"local": {"model": model, "threads": 1}},
        }
    )
    backend = registry.create("local", BackendSection.model_validate(spec.backends["local"].model_dump()))
    prepared = backend.prepare(spec, ROWS, [], tmp_path / "prep")
    job_id = backend.submit(spec, backend.upload(prepared), "job-m")
    deadline = time.monotonic() + 120
    while (state := backend.get(job_id)).status not in (JobStatus.SUCCEEDED, JobStatus.FAILED):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return state


def test_a_model_in_the_hugging_face_cache_is_found_by_its_name_offline(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    snapshot = cache / "models--acme--tiny-chat" / "snapshots" / "0123456789abcdef"
    build([{"messages": [m.model_dump() for r in ROWS for m in r.messages]}], 0, snapshot)
    (cache / "models--acme--tiny-chat" / "refs").mkdir()
    (cache / "models--acme--tiny-chat" / "refs" / "main").write_text("0123456789abcdef")
    for name in ("HF_HUB_CACHE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    state = _run(tmp_path, "acme/tiny-chat", {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"})
    assert state.status == JobStatus.SUCCEEDED, state.error
    assert state.base_model == "acme/tiny-chat"


def test_a_name_not_in_the_cache_fails_without_downloading(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    state = _run(tmp_path, "acme/not-here", {"HF_HUB_CACHE": str(tmp_path / "empty"), "HF_HUB_OFFLINE": "1"})
    assert state.status == JobStatus.FAILED and "not in the Hugging Face cache" in state.error
