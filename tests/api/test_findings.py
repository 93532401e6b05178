"""`fto.submit()` says what the data check found, as the CLI does (issue 31, item 12): a warning, the findings on
the experiment, and a section of its notebook display."""

from __future__ import annotations

from pathlib import Path

import pytest

import fto
from tests.conftest import ANIMALS


def test_submit_warns_of_findings_and_the_experiment_shows_them(tmp_path: Path):
    rows = ANIMALS.read_text().splitlines()[:120]
    data = tmp_path / "dup.jsonl"
    data.write_text("\n".join(rows + rows[:10]) + "\n")  # ten examples twice
    spec = {"name": "dups", "data": {"train": str(data)}, "hyperparameters": {"epochs": 1},
            "backends": {"local": {}}, "eval": None}  # fmt: skip
    with pytest.warns(fto.DataCheckWarning, match="duplicate"):
        experiment = fto.submit(spec)
    try:
        assert any("[duplicate]" in line and str(data) in line for line in experiment.findings)
        html = experiment._repr_html_()
        assert "Data check at submit" in html and "identical examples" in html
        assert fto.experiment(experiment.id).findings  # read back where it was not submitted
    finally:
        experiment.cancel()
