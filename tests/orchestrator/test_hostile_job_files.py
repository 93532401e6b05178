"""Hostile job files (tests/fixtures/hostile-jobs): each ends in one line and exit code 2, at once, nothing stored."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, run_fto

HOSTILE = FIXTURES / "hostile-jobs"
EXPECTED = {
    "billion-laughs.yaml": ":4: more than 20 YAML aliases",
    "deep-nesting.yaml": ":2: nested more than 32 levels deep",
    "duplicate-keys.yaml": ":5: hyperparameters.epochs: key given twice (first on line 4)",
    "huge-float.yaml": ":2: hyperparameters.learning_rate: a number of 5,002 characters",
    "huge-integer.yaml": ":2: seed: a number of 5,000 characters",
    "infinite-learning-rate.yaml": ":3: hyperparameters.learning_rate: Input should be a finite number",
    "nan-multiplier.yaml": ":3: hyperparameters.learning_rate_multiplier: Input should be a finite number",
    "not-a-mapping.yaml": ":1: a job file must be a mapping",
    "not-utf8.yaml": ": cannot read job file: 'utf-8' codec can't decode",
    "python-tag.yaml": ":1: invalid YAML: could not determine a constructor for the tag",
    "too-big.yaml": ": 1,344,911 bytes: a job file may have at most 1,048,576",
}


def test_every_file_in_the_corpus_is_expected():
    assert {p.name for p in HOSTILE.glob("*.yaml")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_hostile_job_file_ends_in_one_line_at_once(name: str, fto_home: Path):
    started = time.monotonic()
    result = run_fto("submit", str(HOSTILE / name), timeout=30)
    seconds = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: {HOSTILE / name}{EXPECTED[name]}"), result.stderr
    assert seconds < 2, f"{name} took {seconds:.1f} s"
    assert not (fto_home / "experiments").exists() or not any((fto_home / "experiments").iterdir())


@pytest.mark.parametrize("special", ["/dev/zero", "folder"])
def test_special_files_are_refused(special: str, tmp_path: Path):
    path = str(tmp_path) if special == "folder" else special
    result = run_fto("submit", path, timeout=30)
    refusal = "is a directory" if special == "folder" else "not a regular file"
    assert result.returncode == 2 and refusal in result.stderr and "Traceback" not in result.stderr, result.stderr
