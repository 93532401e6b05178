"""Fireworks reinforcement fine-tuning through the real `fireworks-ai` SDK against the loopback Fireworks (every
request and answer checked against the SDK's types): the grader as an evaluator of fto's own code, the RFT job
under fto's id with GRPO and the sampling settings; and the evaluator's code run as Fireworks runs it, from its
files alone, scoring as `fto eval` does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fto.orchestrator.graders.run import grade_many, sample_of
from fto.schemas import JobSpec, JobStatus
from tests.backends.fireworks.test_fireworks import _backend
from tests.backends.local.jobs import submit, wait_for
from tests.conftest import ANIMALS
from tests.rewards import MULTI


def _spec() -> JobSpec:
    return JobSpec.model_validate(
        {"name": "rft", "method": "rft", "data": {"train": str(ANIMALS), "validation": 0.1}, "graders": [MULTI],
         "rft": {"grader": "reward", "samples_per_prompt": 6, "max_new_tokens": 24, "temperature": 0.9},
         "hyperparameters": {"epochs": 2, "beta": 0.02}}
    )  # fmt: skip


def _evaluate_as_fireworks(files: dict[str, str], calls: list[dict[str, Any]], folder: Path) -> list[Any]:
    """The evaluator's files in a bare interpreter (no site-packages), its entry function called per sample."""
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    script = (f"import json, sys; sys.path.insert(0, {str(folder)!r}); import main; "
              "print(json.dumps([main.evaluate(**call) for call in json.load(sys.stdin)]))")  # fmt: skip
    done = subprocess.run([sys.executable, "-S", "-E", "-c", script], input=json.dumps(calls), capture_output=True,
                          text=True, timeout=60, cwd=folder)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_rft_job_with_the_grader_as_an_evaluator(fireworks_api, tmp_path):
    spec = _spec()
    backend = _backend(fireworks_api)
    job_id = submit(backend, spec, tmp_path / "prepared", "job-rft")
    assert job_id == "accounts/acct/reinforcementFineTuningJobs/job-rft"
    assert wait_for(backend, job_id).status == JobStatus.SUCCEEDED
    assert backend.find("job-rft") == job_id

    sent = fireworks_api.jobs[job_id]["body"]
    assert sent["inferenceParameters"] == {"temperature": 0.9, "responseCandidatesCount": 6, "maxOutputTokens": 24}
    assert sent["lossConfig"] == {"method": "GRPO", "klBeta": 0.02}
    [(evaluator_id, evaluator)] = fireworks_api.evaluators.items()
    assert sent["evaluator"] == f"accounts/acct/evaluators/{evaluator_id}"
    submit(backend, spec, tmp_path / "again", "job-rft-2")  # the same grader: its evaluator is found, not made again
    assert len(fireworks_api.evaluators) == 1

    # the evaluator scores sampled answers as fto's graders do, with nothing but its own files
    snippets = evaluator["criteria"][0]["codeSnippets"]
    assert (snippets["entryFile"], snippets["entryFunc"]) == ("main.py", "evaluate")
    rows = [json.loads(line) for line in ANIMALS.read_text().splitlines()[:5]]
    answers = ["mammal", "a bird", "", "It is surely a REPTILE of some kind", "fish"]
    calls = [
        {
            "messages": [*row["messages"][:-1], {"role": "assistant", "content": answer}],
            "ground_truth": row["messages"][-1]["content"],
        }
        for row, answer in zip(rows, answers, strict=True)
    ]
    scored = _evaluate_as_fireworks(snippets["fileContents"], calls, tmp_path / "evaluator")
    items = [{"reference": row["messages"][-1]["content"], "messages": row["messages"][:-1]} for row in rows]
    expected = grade_many(spec.graders[0], [sample_of(a) for a in answers], items)
    assert [s["score"] for s in scored] == pytest.approx([g.value for g in expected])
    assert {k: v["score"] for k, v in scored[1]["metrics"].items()} == pytest.approx(expected[1].parts)
