"""`fto plan`: cost, time, limits, data findings and local memory per backend, from what is on this machine: no
request reaches a provider (loopback providers count every request), time learned from the store's past jobs,
bad names and unknown devices in one line."""

from __future__ import annotations

import json
import time

import pytest
import yaml

from tests.conftest import ANIMALS, REPO, run_fto

pytestmark = pytest.mark.timeout(300)


def _hosted(tmp_path, **loopbacks) -> str:
    example = yaml.safe_load((REPO / "examples" / "hosted.yaml").read_text())
    for name, api in loopbacks.items():
        example["backends"][name] |= {k: v for k, v in api.section.items() if k != "model"}
    example["data"]["train"] = str(ANIMALS)
    path = tmp_path / "hosted.yaml"
    path.write_text(yaml.safe_dump(example))
    return str(path)


def test_plan_all_answers_fast_and_sends_nothing(azure_api, nebius_api, fto_home, tmp_path):
    job = _hosted(tmp_path, azure=azure_api, nebius=nebius_api)
    started = time.monotonic()
    result = run_fto("plan", job, "--all", "--json")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert elapsed < 3.0, f"fto plan took {elapsed:.1f} s"
    assert azure_api.requests == [] and nebius_api.requests == []  # nothing reached a provider
    rows = {row["backend"]: row for row in json.loads(result.stdout)["rows"]}
    assert {"azure", "nebius", "local", "together", "vertex", "sagemaker"} <= set(rows)
    assert rows["azure"]["cost_usd"] == pytest.approx(rows["azure"]["charged_tokens"] * 5.0 / 1e6, rel=1e-3)
    assert rows["azure"]["hosting_usd_per_hour"] == 1.7 and rows["azure"]["blocked"] == []
    local = rows["local"]["memory"]
    assert local["fits"] and 0 < local["needed_gib"]["total"] < 2 and local["largest_micro_batch_tokens"] > 4096


def test_limits_block_and_the_memory_plan_follows_the_device(fto_home, write_job):
    sections = {"local": {"model": "embedded:tiny-llama"}, "openai": {"model": "gpt-4o-mini-2024-07-18"}}
    job = write_job({"hyperparameters": {"epochs": 40}, "backends": sections})
    result = run_fto("plan", str(job), "--json", "--device", "t4-16gb")
    rows = {row["backend"]: row for row in json.loads(result.stdout)["rows"]}
    assert rows["openai"]["blocked"] == ["epochs 40 outside 1–25"]
    assert rows["local"]["memory"]["device"] == "t4-16gb" and rows["local"]["memory"]["device_gib"] == 16
    tight = json.loads(run_fto("plan", str(job), "--json", "--device", "cpu-1gb").stdout)
    small = next(r for r in tight["rows"] if r["backend"] == "local")["memory"]
    assert small["largest_micro_batch_tokens"] < rows["local"]["memory"]["largest_micro_batch_tokens"]


def test_time_is_learned_from_past_jobs(azure_api, write_job, fto_home):
    job = write_job({"backends": {"azure": azure_api.section}, "eval": None})
    assert run_fto("run", str(job), "--backend", "azure", timeout=240).returncode == 0
    [azure] = json.loads(run_fto("plan", str(job), "--backend", "azure", "--json").stdout)["rows"]
    assert azure["throughput"]["jobs"] == 1 and azure["expected_hours"] > 0
    shown = run_fto("plan", str(job), "--backend", "azure")
    assert "fastest: azure" in " ".join(shown.stdout.split())


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--device", "h900-1tb"], "unknown device 'h900-1tb'"), (["--backend", "azur"], "unknown backend 'azur'")],
)
def test_bad_names_are_one_line(write_job, fto_home, args, message):
    result = run_fto("plan", str(write_job()), *args)
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_baseline_ranks_the_candidate_bases_with_intervals(fto_home, tmp_path):
    """--baseline on the quickstart: a base that knows the task (an adapter trained here in seconds) ranks above a
    random one; the embedded model (built per job) is skipped with its reason; nothing is spent without asking."""
    from fto import loop
    from fto.backends.local.loop import LocalLoop

    trainer = LocalLoop.open("embedded:tiny-llama", rank=8, seed=0, root=tmp_path / "loops")
    rows = [json.loads(line) for line in ANIMALS.read_text().splitlines()]
    data = [loop.chat_datum(trainer.tokenizer, r["messages"]) for r in rows[:320]]
    for step in range(40):
        loop.sft_step(trainer, data[step * 8 % 320 : step * 8 % 320 + 8], 3e-3)
    trained, random_base = trainer.save_weights_for_sampler("knows-animals"), str(trainer.base)

    quickstart = yaml.safe_load((REPO / "examples" / "quickstart.yaml").read_text())
    quickstart["data"]["train"] = str(ANIMALS)
    job = tmp_path / "quickstart.yaml"
    job.write_text(yaml.safe_dump(quickstart))
    result = run_fto("plan", str(job), "--backend", "local", "--models", f"{random_base},{trained},embedded:tiny-llama",
                     "--baseline", "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    ranked = [b["model"] for b in found["baseline"]]
    assert ranked == [trained, random_base]  # best first; the embedded model is skipped
    assert "embedded:tiny-llama: skipped: built per job" in result.stderr
    best = found["baseline"][0]["scores"]["exact_match"]
    assert best["low"] <= best["value"] <= best["high"] and best["value"] > found["baseline"][1]["scores"][
        "exact_match"]["high"]  # fmt: skip
    assert any(r["kind"] == "best baseline" and r["model"] == trained for r in found["recommendations"])


def test_baseline_on_a_hosted_model_asks_before_spending(azure_api, fto_home, tmp_path):
    job = _hosted(tmp_path, azure=azure_api)
    result = run_fto("plan", job, "--backend", "azure", "--baseline")  # not a terminal, no --yes
    assert result.returncode != 0
    assert "add --yes" in result.stderr and "about $" in result.stdout
    assert azure_api.requests == []  # the quote is made from provider.json; nothing was sent
