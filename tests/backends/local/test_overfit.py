"""A local run built to overfit — 24 examples with random labels, 60 epochs, validation after each — is flagged,
and `eval: {checkpoint: best}` evaluates the adapter saved at the best step, which scores better on held-out data
(perplexity of the reference answers) than the last one."""

from __future__ import annotations

import json
import random

import pytest
import yaml

from fto.orchestrator.store import Store
from tests.conftest import FIXTURES, run_fto

ANIMALS = FIXTURES / "animals_v1" / "animals.jsonl"  # short templated prompts: 60 epochs memorise them

pytestmark = pytest.mark.slow  # trains a model


def _overfit_job(tmp_path, checkpoint: str) -> str:
    """24 examples with random labels, 60 epochs, validation after each: built to memorise."""
    rows = [json.loads(line) for line in ANIMALS.read_text().splitlines()]
    rng = random.Random(0)
    noisy = rows[:24]
    for row in noisy:  # labels it can only memorise
        row["messages"][-1]["content"] = rng.choice(["bird", "mammal", "fish", "reptile", "insect"])
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in noisy))
    (tmp_path / "valid.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[199:260]))
    job = {
        "name": "overfit",
        "data": {"train": "train.jsonl", "validation": "valid.jsonl"},
        "hyperparameters": {"epochs": 60, "batch_size": 24, "learning_rate": 1e-2, "lora": {"r": 16, "alpha": 32}},
        "check": {"enabled": False},
        "backends": {"local": {"model": "embedded:tiny-llama", "checkpoint_every": 1}},
        "eval": {"checkpoint": checkpoint, "scorers": ["perplexity", "exact_match"], "max_examples": 60,
                 "max_new_tokens": 4},
    }  # fmt: skip
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    return str(tmp_path / "job.yaml")


def test_an_overfit_run_is_flagged_and_its_best_checkpoint_evaluated(tmp_path, fto_home):
    result = run_fto("run", _overfit_job(tmp_path, "best"), timeout=400)
    assert result.returncode == 0, result.stdout + result.stderr
    store = Store()
    [experiment] = store.experiments()
    [trained] = store.jobs(experiment.id)
    [note] = [e for e in store.events(trained.id) if "checkpoint: best" in e.message]
    assert "overfitting: validation loss rose" in note.message and note.data["best_step"] < 60
    assert note.data["checkpoint"].endswith(f"adapter-step-{note.data['best_step']:08d}")
    compared = json.loads(run_fto("compare", experiment.id, "--json").stdout)
    assert compared["overfitting"][trained.id]["best_step"] == note.data["best_step"]
    # the last adapter, on the same held-out examples
    last = run_fto("eval", experiment.id, "--target", f"job:{trained.id}", timeout=300)
    assert last.returncode == 0, last.stdout + last.stderr
    scores = {r["target"]: r["score"] for r in store.scores(experiment.id) if r["scorer"] == "perplexity"}
    assert scores["local/fine-tuned"] < scores[f"local/{trained.id}"]  # the best step generalises better
    report = (fto_home / "experiments" / experiment.id / "report.md").read_text()
    assert "## Overfitting" in report
    chart = (fto_home / "experiments" / experiment.id / "report.html").read_text()
    assert f"best step of {trained.id}" in chart and 'class="best-step"' in chart  # marked on the loss chart


def test_the_last_model_of_an_overfit_run_is_called_memorisation(tmp_path, fto_home):
    result = run_fto("run", _overfit_job(tmp_path, "last"), timeout=400)
    assert result.returncode == 0, result.stdout + result.stderr
    [experiment] = Store().experiments()
    gap = json.loads(run_fto("compare", experiment.id, "--json").stdout)["generalisation_gap"]["local/fine-tuned"]
    exact = gap["scorers"]["exact_match"]
    assert gap["examples"] == 24 and exact["memorisation"] and exact["train"] - exact["held_out"] >= 0.2
    report = (fto_home / "experiments" / experiment.id / "report.md").read_text()
    assert "memorisation: it answers its training data far better than new examples" in report
