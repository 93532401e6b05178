"""A sweep on a hosted backend: each point's hyperparameters reach the provider once, and `fto compare` ranks the
points with their intervals and paired tests against the best."""

from __future__ import annotations

import json

import pytest

from fto.orchestrator.store import Store
from tests.conftest import run_fto


@pytest.mark.slow  # three jobs end to end against the loopback Together
@pytest.mark.timeout(300)
def test_a_sweep_on_a_hosted_backend_sends_each_point_and_ranks_them(together_api, write_job, fto_home):
    job = write_job({"hyperparameters": {"learning_rate": [1e-5, 3e-5, 1e-4], "epochs": 1},
                     "backends": {"together": {"base_url": together_api.base_url}},
                     "eval": {"scorers": ["token_f1"], "max_examples": 20, "train_sample": 0}})  # fmt: skip
    result = run_fto("run", str(job), "--backend", "together", timeout=280)
    assert result.returncode == 0, result.stdout + result.stderr
    store = Store()
    [experiment] = store.experiments()
    jobs = store.jobs(experiment.id)
    assert sorted(j.backend for j in jobs) == sorted(
        f"together@learning_rate={lr}" for lr in ("1e-05", "3e-05", "0.0001")
    )
    sent = sorted(created.request["learning_rate"] for created in together_api.jobs.values())
    assert sent == [1e-5, 3e-5, 1e-4]  # each point's own rate reached the provider, once
    data = json.loads(run_fto("compare", experiment.id, "--json").stdout)
    [ranking] = data["sweep"]
    assert ranking["backend"] == "together" and ranking["parameters"] == ["learning_rate"]
    assert [p["rank"] for p in ranking["points"]] == [1, 2, 3]
    scores = [p["score"] for p in ranking["points"]]
    assert scores == sorted(scores, reverse=True)
    assert all(p["versus_best"] is not None for p in ranking["points"][1:])
    assert sum(1 for m in data["models"] if m["target"]["role"] == "base") == 1  # the shared base, evaluated once
    folder = fto_home / "experiments" / experiment.id
    assert "## Sweep: together (token_f1)" in (folder / "report.md").read_text()
    assert "aria-label='sweep: learning_rate'" in (folder / "report.html").read_text()
    assert "sweep: together, ranked on token_f1" in result.stdout
