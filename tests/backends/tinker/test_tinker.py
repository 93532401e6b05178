"""The `tinker` backend and fto.loop against a Tinker-compatible provider on 127.0.0.1: `fto serve`'s Tinker API
behind a proxy that checks every request and answer with the tinker SDK's own models (tests/tinker_proxy.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("tinker")

from tests.conftest import REPO, model_scores
from tests.serving import ServeProcess
from tests.tinker_proxy import TinkerProxy

pytestmark = pytest.mark.slow


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[TinkerProxy]:
    server = ServeProcess(tmp_path / "provider-home")
    try:
        with TinkerProxy(server.url.removesuffix("/v1")) as proxy:
            yield proxy
            assert proxy.violations == []
    finally:
        server.stop()


def _script(*args: str, home: Path) -> list[dict]:
    out = subprocess.run(
        [sys.executable, str(REPO / "examples" / "loop_sft.py"), "--steps", "12", *args],
        env={**os.environ, "FTO_HOME": str(home)}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


@pytest.mark.timeout(400)
def test_one_loop_script_runs_in_process_and_on_a_tinker_service(provider: TinkerProxy, tmp_path: Path) -> None:
    local = _script(home=tmp_path / "local-home")
    served = _script("--url", provider.upstream, home=tmp_path / "served-home")  # fto serve itself
    remote = _script("--url", provider.url, home=tmp_path / "client-home")  # the checked Tinker-compatible provider
    losses = [[r["loss"] for r in run if "loss" in r] for run in (local, served, remote)]
    assert losses[0][-1] < 0.5 * losses[0][0]
    # The same steps on the same model and seed: the same curve, wherever it ran.
    assert losses[1] == pytest.approx(losses[0], rel=1e-3)
    assert losses[2] == pytest.approx(losses[0], rel=1e-3)
    assert local[-2]["answer"] == remote[-2]["answer"]
    assert remote[-1]["saved"].startswith("tinker://")
    assert {"forward_backward", "optim_step", "asample", "save_weights"} <= set(provider.seen)


@pytest.mark.timeout(600)
def test_quickstart_runs_on_the_tinker_backend_with_eval_and_report(provider: TinkerProxy, tmp_path: Path) -> None:
    home = tmp_path / "client-home"
    env = {**os.environ, "FTO_HOME": str(home), "TINKER_BASE_URL": provider.url}
    command = [sys.executable, "-m", "fto.orchestrator", "run", str(REPO / "examples" / "quickstart.yaml"),
               "--backend", "tinker"]  # fmt: skip
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=560)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "tinker/fine-tuned" in out.stdout and "tinker://" in out.stdout
    compared = subprocess.run([sys.executable, "-m", "fto.orchestrator", "compare", "--json"], env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
    scores = model_scores(json.loads(compared.stdout))
    assert scores["tinker/fine-tuned"]["exact_match"] > scores["tinker/base"]["exact_match"] + 0.1
    assert list((home / "experiments").glob("*/report.html"))
    assert {"create_model", "forward_backward", "optim_step", "save_weights_for_sampler", "asample"} <= set(
        provider.seen
    )


@pytest.mark.timeout(400)
def test_rft_runs_as_a_grpo_loop_with_the_jobs_grader(provider: TinkerProxy, tmp_path: Path) -> None:
    import yaml

    rows = (REPO / "examples" / "data" / "animals.jsonl").read_text().splitlines()[:40]
    (tmp_path / "prompts.jsonl").write_text("\n".join(rows) + "\n")
    spec = yaml.safe_load((REPO / "examples" / "rft.yaml").read_text())
    spec["data"]["train"] = str(tmp_path / "prompts.jsonl")
    spec["rft"]["samples_per_prompt"] = 4
    spec["hyperparameters"]["batch_size"] = 12
    spec["backends"] = {"tinker": {"model": "embedded:tiny-llama"}}
    spec["eval"]["max_examples"] = 4
    job = tmp_path / "rft.yaml"
    job.write_text(yaml.safe_dump(spec))
    home = tmp_path / "client-home"
    env = {**os.environ, "FTO_HOME": str(home), "TINKER_BASE_URL": provider.url}
    out = subprocess.run([sys.executable, "-m", "fto.orchestrator", "run", str(job), "--backend", "tinker"], env=env,
                         capture_output=True, text=True, timeout=360)  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    status = json.loads(subprocess.run([sys.executable, "-m", "fto.orchestrator", "status", "--json"], env=env,
                                       capture_output=True, text=True, timeout=60).stdout)  # fmt: skip
    [job_row] = status
    assert job_row["status"] == "succeeded" and job_row["fine_tuned_model"].startswith("tinker://")
    metrics = [json.loads(line) for line in next((home / "backends" / "tinker" / "jobs").glob("*/metrics.jsonl"))
               .read_text().splitlines()]  # fmt: skip
    assert len(metrics) == 3 and all(0.0 <= m["reward"] <= 1.0 for m in metrics)  # the grader's scores, per step
    assert provider.seen["asample"] >= 36  # every prompt of every step sampled on the service
