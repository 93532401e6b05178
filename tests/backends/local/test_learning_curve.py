"""`fto run --learning-curve 0.25,0.5,1` on the quickstart: three jobs in one experiment, each on a nested subset of
the training data, and the curve with its verdict in the report."""

from __future__ import annotations

import json

import pytest

from fto.orchestrator.errors import ConfigError
from fto.orchestrator.learning_curve import parse_fractions, subset
from fto.orchestrator.store import Store
from tests.conftest import QUICKSTART, run_fto


@pytest.mark.slow  # three local fine-tunes
@pytest.mark.timeout(600)  # three trainings and three evals: minutes on 2 cores, more when the machine is busy
def test_the_quickstart_as_a_learning_curve(fto_home):
    result = run_fto("run", str(QUICKSTART), "--learning-curve", "0.25,0.5,1", timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    store = Store()
    [experiment] = store.experiments()  # one experiment
    jobs = {job.backend: job for job in store.jobs(experiment.id)}
    assert set(jobs) == {"local@0.25", "local@0.5", "local@1"}
    examples = {name: next(e.data["examples"] for e in store.events(job.id) if "examples" in e.data)
                for name, job in jobs.items()}  # fmt: skip
    assert examples == {"local@0.25": 106, "local@0.5": 212, "local@1": 425}
    [curve] = json.loads(run_fto("compare", experiment.id, "--json").stdout)["learning_curve"]
    assert [p["examples"] for p in curve["points"]] == [106, 212, 425]
    assert curve["verdict"].startswith(("still improving", "flat"))
    report = (fto_home / "experiments" / experiment.id / "report.md").read_text()
    assert "## Learning curve: local (exact_match)" in report and curve["verdict"] in report
    assert "aria-label='learning curve'" in (fto_home / "experiments" / experiment.id / "report.html").read_text()


def test_fractions_are_nested_and_checked():
    rows = list(range(100))
    quarter, half = subset(rows, 0.25, seed=0), subset(rows, 0.5, seed=0)  # type: ignore[arg-type]
    assert len(quarter) == 25 and len(half) == 50 and set(quarter) <= set(half)
    assert parse_fractions("1, 0.5,0.25") == [0.25, 0.5, 1.0]
    for bad in ("0", "1.5", "half"):
        with pytest.raises(ConfigError, match="--learning-curve"):
            parse_fractions(bad)
