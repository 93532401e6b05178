"""A team's PostgreSQL store: machine A submits and runs, machine B (another FTO_HOME, the same store) evaluates,
compares and renders with no file from A — the held-out examples and every model's answers live in the store
(issue 30, item 2). Deleting A's experiment folder changes nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import ANIMALS, run_fto

pytestmark = pytest.mark.slow  # an experiment end to end, twice


def test_a_second_machine_evaluates_and_compares_with_no_file_from_the_first(
    sim_server, postgres_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("FTO_STORE", postgres_server.new_database())
    server = sim_server()
    spec = {
        "name": "team",
        "data": {"train": str(ANIMALS), "validation": 0.1},
        "backends": {"sim": {"url": server.url, "duration": 0.5, "min_poll_interval": 0.2, "max_poll_interval": 0.4}},
        "eval": {"max_examples": 20, "max_new_tokens": 8, "scorers": ["exact_match", "token_f1"]},
    }
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(spec))
    machine_a, machine_b = tmp_path / "home-a", tmp_path / "home-b"
    monkeypatch.setenv("FTO_HOME", str(machine_a))
    done = run_fto("run", str(job))
    assert done.returncode == 0, done.stderr
    on_a = json.loads(run_fto("compare", "--json").stdout)
    shutil.rmtree(machine_a / "experiments" / on_a["experiment"])  # A's files are gone

    monkeypatch.setenv("FTO_HOME", str(machine_b))
    evaluated = run_fto("eval", on_a["experiment"])
    assert evaluated.returncode == 0, evaluated.stderr
    on_b = json.loads(run_fto("compare", on_a["experiment"], "--json").stdout)
    assert on_b["models"] == on_a["models"] and on_b["comparisons"] == on_a["comparisons"]
    assert on_b["check"] == on_a["check"] and on_b["generalisation_gap"] == on_a["generalisation_gap"]
    report = machine_b / "experiments" / on_a["experiment"] / "report.html"
    html = report.read_text()
    assert "sim/fine-tuned" in html and "Paired comparisons" in html
    assert not (machine_a / "experiments" / on_a["experiment"]).exists()
