"""Reinforcement fine-tuning on the local trainer, for real: GRPO on the embedded model with a grader as reward.

The task is examples/rft.yaml's: name the animal's class, briefly (a python grader for length and a string_check
for the class, combined by a multi grader). The reward of the same prompts must rise from the first epoch to the
last by a margin the paired test finds significant, and the same grader as eval metric must put the fine-tuned
model above its base.
"""

import json
from pathlib import Path

import pytest
import yaml

from fto.orchestrator.data.load import read_dataset
from fto.orchestrator.data.write import write_records
from fto.orchestrator.errors import DataError
from fto.orchestrator.eval.stats import paired_comparison
from fto.schemas import JobSpec, JobStatus
from tests.backends.local.jobs import start, wait_for
from tests.conftest import ANIMALS, REPO, model_scores, run_fto

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

EXAMPLE = yaml.safe_load((REPO / "examples" / "rft.yaml").read_text())
ROWS = read_dataset(str(ANIMALS), method="rft")


def _rollouts(home: Path) -> list[dict]:
    (folder,) = (home / "backends" / "local" / "jobs").iterdir()
    return [json.loads(line) for line in (folder / "rollouts.jsonl").read_text().splitlines()]


def test_rft_raises_the_reward_significantly_and_eval_with_the_same_grader_agrees(tmp_path, fto_home):
    job = {**EXAMPLE, "data": {"train": str(ANIMALS), "validation": 0.1}}
    job["hyperparameters"] = {**job["hyperparameters"], "epochs": 2}
    job["eval"] = {**job["eval"], "max_examples": 30}
    lines = ANIMALS.read_text().splitlines()[:200]  # 180 prompts: 23 steps an epoch
    (tmp_path / "animals.jsonl").write_text("\n".join(lines) + "\n")
    job["data"]["train"] = "animals.jsonl"
    (tmp_path / "rft.yaml").write_text(yaml.safe_dump(job, sort_keys=False))

    result = run_fto("run", str(tmp_path / "rft.yaml"), "--backend", "local", timeout=500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    # The same prompts, first epoch against last: each prompt's mean reward over its group of 8 answers.
    by_epoch: dict[int, dict[int, float]] = {0: {}, 1: {}}
    for line in _rollouts(fto_home):
        scored = [r for r in line["rewards"] if r is not None]
        by_epoch[line["epoch"]][line["prompt"]] = sum(scored) / len(scored)
    prompts = sorted(by_epoch[0])
    assert prompts == sorted(by_epoch[1]) and len(prompts) == 180
    first, last = [by_epoch[0][p] for p in prompts], [by_epoch[1][p] for p in prompts]
    compared = paired_comparison(first, last, seed=0)
    assert compared.significant and compared.difference > 0.2, compared

    # The training metrics carry the reward, its parts, the KL to the base and the answer length.
    metrics = [json.loads(m) for m in next((fto_home / "backends" / "local" / "jobs").iterdir()).joinpath(
        "metrics.jsonl").read_text().splitlines()]  # fmt: skip
    assert {"reward", "kl", "completion_tokens", "reward_parts"} <= metrics[-1].keys()
    assert set(metrics[-1]["reward_parts"]) == {"short", "answer"}
    assert metrics[-1]["kl"] > 0 and metrics[-1]["completion_tokens"] < metrics[0]["completion_tokens"]
    assert metrics[-1]["valid_reward"] is not None

    report = json.loads(run_fto("compare", "--json").stdout)
    scores = model_scores(report)
    base, tuned = scores["local/base"], scores["local/fine-tuned"]
    assert tuned["reward"] > base["reward"] + 0.2 and tuned["reward_pass"] > base["reward_pass"]
    (test,) = [t for t in report["comparisons"] if t["scorer"] == "reward" and t["kind"] == "base"]
    assert test["significant"] and test["difference"] > 0, test


def _spec(grader_source: str, on_error: str = "skip", epochs: int = 1) -> JobSpec:
    return JobSpec.model_validate({
        "name": "t", "method": "rft", "data": {"train": str(ANIMALS)}, "seed": 3,
        "graders": [{"name": "g", "type": "python", "source": grader_source, "timeout_seconds": 1}],
        "rft": {"grader": "g", "samples_per_prompt": 4, "max_new_tokens": 6, "on_grader_error": on_error},
        "hyperparameters": {"epochs": epochs, "batch_size": 4, "learning_rate": 3e-3},
        "backends": {"local": {"threads": 1}},
    })  # fmt: skip


LENGTH = "def grade(sample, item):\n    return -len(sample['output_text']) / 10\n"


def test_rft_runs_are_deterministic_for_a_seed(tmp_path):
    rewards = []
    for run in ("a", "b"):
        backend, job = start(tmp_path, _spec(LENGTH), ROWS[:16], ROWS[16:20], job_id=f"job-{run}")
        assert wait_for(backend, job, timeout=240).status == JobStatus.SUCCEEDED
        rewards.append([(m.reward, m.loss) for m in backend.updates(job, None).metrics])
    assert rewards[0] == rewards[1] and len(rewards[0]) == 4


HOSTILE = """
def grade(sample, item):
    question = [m["content"] for m in item["messages"] if m["role"] == "user"][-1]
    if "tortoise" in question or "shark" in question:
        while True:
            pass
    if "herring" in question:
        return float("nan")
    return -len(sample["output_text"]) / 10
"""


def test_a_hostile_grader_costs_its_answers_not_the_job(tmp_path):
    def is_hostile(row):
        return any(word in row.messages[-2].content for word in ("tortoise", "shark", "herring"))

    rows = [r for r in ROWS if is_hostile(r)][:3] + [r for r in ROWS if not is_hostile(r)][:5]  # 2 steps of 4
    backend, job = start(tmp_path, _spec(HOSTILE), rows, [], job_id="job-skip")
    assert wait_for(backend, job, timeout=240).status == JobStatus.SUCCEEDED
    metrics = backend.updates(job, None).metrics
    assert sum(m.grader_errors or 0 for m in metrics) == 3 * 4  # every answer to a hostile prompt, no other
    assert all(m.reward is not None for m in metrics)

    backend, job = start(tmp_path, _spec(HOSTILE, on_error="fail"), rows, [], job_id="job-fail")
    failed = wait_for(backend, job, timeout=240)
    assert failed.status == JobStatus.FAILED
    assert "the grader could not score an answer" in (failed.error or "")
    assert "rft.on_grader_error: fail" in (failed.error or "")


def test_rft_settings_are_checked_before_anything_runs(write_job):
    bad = write_job({"method": "rft"})
    result = run_fto("submit", str(bad), "--backend", "local")
    assert result.returncode != 0 and "rft needs an rft section naming its reward grader" in result.stderr
    assert "line 5" in result.stderr or f"{bad.name}:" in result.stderr

    missing = write_job({"method": "rft", "rft": {"grader": "nope"}})
    result = run_fto("submit", str(missing), "--backend", "local")
    assert result.returncode != 0 and "rft.grader 'nope' names no grader" in result.stderr

    stray = write_job({"rft": {"grader": "x"}})
    result = run_fto("submit", str(stray), "--backend", "local")
    assert result.returncode != 0 and "an rft section is for method: rft" in result.stderr


def test_rft_rows_keep_the_fields_their_graders_read(tmp_path):
    (tmp_path / "in.jsonl").write_text(
        '{"messages": [{"role": "user", "content": "What is 2+3?"}], "answer": "5", "tags": ["sum"]}\n'
        '{"messages": [{"role": "user", "content": "What is 4+3?"}], "answer": "7", "tags": []}\n'
    )
    with pytest.raises(DataError, match="no assistant message"):
        read_dataset(str(tmp_path / "in.jsonl"))  # SFT needs answers to learn from
    rows = read_dataset(str(tmp_path / "in.jsonl"), method="rft")  # RFT: prompts and the fields graders read
    write_records(rows, tmp_path / "out.jsonl", "rft")
    written = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert written == [
        {"answer": "5", "tags": ["sum"], "messages": [{"role": "user", "content": "What is 2+3?"}]},
        {"answer": "7", "tags": [], "messages": [{"role": "user", "content": "What is 4+3?"}]},
    ]
