"""`fto plan`'s memory estimate for local training against the peak the trainer records when it ends (resident
memory on a CPU), for the embedded model: within 15%."""

from __future__ import annotations

import json

import pytest

from fto.orchestrator.store import Store
from tests.conftest import run_fto

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]


def test_the_estimate_is_within_15_percent_of_the_measured_peak(write_job, fto_home):
    job = write_job({"eval": None, "hyperparameters": {"epochs": 1}})
    assert run_fto("run", str(job), "--backend", "local", timeout=300).returncode == 0
    store = Store()
    [job_record] = store.jobs(store.experiments()[0].id)
    [peak] = [e.data["peak_memory_bytes"] for e in store.events(job_record.id) if "peak_memory_bytes" in e.data]
    planned = json.loads(run_fto("plan", str(job), "--backend", "local", "--json").stdout)
    estimate = planned["rows"][0]["memory"]["needed_gib"]["total"] * 1024**3
    assert abs(estimate - peak) / peak < 0.15, f"estimate {estimate / 1024**3:.2f} GiB, measured {peak / 1024**3:.2f}"
