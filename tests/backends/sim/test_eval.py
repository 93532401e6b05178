"""The eval harness over real HTTP: generations cached and resumed, custom scorers, intervals and comparisons."""

import json
import os
import re
import sqlite3
from pathlib import Path

import jsonschema
import pytest
import yaml
from starlette.testclient import TestClient

from fto.orchestrator.store import Store
from fto.orchestrator.ui.app import UiConfig, create_ui_app
from tests.conftest import ANIMALS, model_scores, run_fto

pytestmark = pytest.mark.slow  # runs experiments end to end


def _job(tmp_path, url: str, scorers: list[str]) -> str:
    spec = {
        "name": "ev",
        "data": {"train": str(ANIMALS), "validation": 0.1},
        "backends": {"sim": {"url": url, "duration": 0.5, "min_poll_interval": 0.2, "max_poll_interval": 0.4}},
        "eval": {"max_examples": 30, "max_new_tokens": 8, "scorers": scorers},
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def test_generations_are_cached_so_a_rerun_is_free_and_an_interrupted_eval_resumes(sim_server, tmp_path, monkeypatch):
    (tmp_path / "my_scorers.py").write_text(
        "def mentions_echo(output, reference, example):\n    return float('echo' in output)\n"
    )
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    server = sim_server()
    result = run_fto("run", _job(tmp_path, server.url, ["exact_match", "my_scorers:mentions_echo", "rouge_l"]))
    assert result.returncode == 0, result.stderr
    calls = server.stats()["requests"]["POST /v1/chat/completions"]
    assert calls == 60 + 50  # 30 examples, base and fine-tuned; 50 training examples for the generalisation gap

    assert run_fto("eval").returncode == 0
    assert server.stats()["requests"]["POST /v1/chat/completions"] == calls  # all from the cache

    store = Store()
    with sqlite3.connect(store.path) as db:  # as if the eval had been interrupted 10 generations short
        db.execute("DELETE FROM generations WHERE rowid IN (SELECT rowid FROM generations LIMIT 10)")
    assert run_fto("eval").returncode == 0
    assert server.stats()["requests"]["POST /v1/chat/completions"] == calls + 10

    report = json.loads(run_fto("compare", "--json").stdout)
    scores = model_scores(report)
    # the sim's base model echoes the prompt; its fine-tuned model answers from its training data
    assert scores["sim/base"]["my_scorers:mentions_echo"] == 1.0
    assert scores["sim/fine-tuned"]["my_scorers:mentions_echo"] == 0.0
    for model in report["models"]:
        for score in model["scores"].values():
            assert score["low"] <= score["value"] <= score["high"]
    assert {c["scorer"] for c in report["comparisons"]} == {"exact_match", "my_scorers:mentions_echo", "rouge_l"}
    exact = next(c for c in report["comparisons"] if c["scorer"] == "exact_match")
    assert exact["significant"] and exact["difference"] > 0.3, exact["text"]  # fine-tuning shows on the sim


def test_an_unknown_scorer_in_the_job_file_names_its_line(sim_server, tmp_path):
    server = sim_server()
    result = run_fto("submit", _job(tmp_path, server.url, ["exact_match", "bleu"]))
    assert result.returncode == 2 and "eval.scorers[1]: unknown scorer 'bleu'" in result.stderr


def test_any_models_on_any_eval_file_addressed_the_same_way(sim_server, tmp_path, monkeypatch):
    from tests.conftest import SHARED_DATA

    server = sim_server()
    monkeypatch.setenv("FTO_SIM_URL", server.url)
    gsm8k = SHARED_DATA / "gsm8k" / "test.jsonl"
    result = run_fto(
        "eval",
        "--data",
        str(gsm8k),
        "--target",
        "sim:sim-base",
        "--target",
        "sim:sim-large",
        "--scorer",
        "numeric_match",
        "--scorer",
        "rouge_l",
        "--max-examples",
        "20",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(run_fto("compare", "--json").stdout)
    assert report["name"] == "eval-test" and report["scorers"] == ["numeric_match", "rouge_l"]
    assert [m["target"]["label"] for m in report["models"]] == ["sim/sim-base", "sim/sim-large"]
    assert all(m["examples"] == 20 for m in report["models"])
    assert server.stats()["requests"]["POST /v1/chat/completions"] == 40

    # a fine-tuned job joins an experiment's comparison as job:ID
    assert run_fto("run", _job(tmp_path, server.url, ["exact_match"])).returncode == 0
    (job,) = [j for j in Store().jobs() if j.backend == "sim"]
    extra = run_fto("eval", job.experiment_id, "--target", f"job:{job.id}", "--target", "sim:sim-large")
    assert extra.returncode == 0, extra.stderr
    targets = [
        m["target"]["label"] for m in json.loads(run_fto("compare", job.experiment_id, "--json").stdout)["models"]
    ]
    assert set(targets) == {"sim/base", "sim/fine-tuned", f"sim/{job.id}", "sim/sim-large"}

    bad = run_fto("eval", "--data", str(gsm8k), "--target", "nowhere:model")
    assert bad.returncode == 1 and "unknown target 'nowhere:model'" in bad.stderr


def test_a_judge_scores_every_model_and_compares_fine_tuned_with_base(sim_server, tmp_path, monkeypatch):
    import threading
    from http.server import ThreadingHTTPServer

    from tests.orchestrator.eval.test_judge import _JudgeServer

    judge = ThreadingHTTPServer(("127.0.0.1", 0), _JudgeServer)
    threading.Thread(target=judge.serve_forever, daemon=True).start()
    monkeypatch.setenv("OPENAI_API_KEY", "test-key-not-secret")
    server = sim_server()
    path = _job(tmp_path, server.url, ["exact_match", "judge"])
    spec = yaml.safe_load(Path(path).read_text())
    spec["eval"]["judge"] = {
        "provider": "openai",
        "model": "judge-1",
        "base_url": f"http://127.0.0.1:{judge.server_port}/v1",
    }
    Path(path).write_text(yaml.safe_dump(spec))
    try:
        result = run_fto("run", path)
    finally:
        judge.shutdown()
    assert result.returncode == 0, result.stderr
    report = json.loads(run_fto("compare", "--json").stdout)
    scores = model_scores(report)
    folder = Store().path.parent / "experiments" / report["experiment"] / "eval"
    outputs = [json.loads(x) for x in (folder / "sim.base.jsonl").read_text().splitlines()]
    right = sum(o["reference"] in o["output"] for o in outputs)  # the sim echoes the question ("catfish" has "fish")
    assert scores["sim/base"]["judge"] == pytest.approx((right * 8 / 9 + (30 - right) / 9) / 30)
    tuned = [json.loads(x) for x in (folder / "sim.fine-tuned.jsonl").read_text().splitlines()]
    wins = [
        1.0 if t["reference"] in t["output"] and b["reference"] not in b["output"] else
        0.0 if b["reference"] in b["output"] and t["reference"] not in t["output"] else 0.5
        for b, t in zip(outputs, tuned, strict=True)
    ]  # fmt: skip
    assert scores["sim/fine-tuned"]["judge_win_rate_vs_base"] == pytest.approx(sum(wins) / len(wins))
    kept = [json.loads(x) for x in (folder / "judge-rate.sim.base.jsonl").read_text().splitlines()]
    assert len(kept) == 30 and "Rating: [[2]]" in kept[0]["verdict"] and "[Question]" in kept[0]["prompt"]
    assert (folder / "judge-pairwise.sim.fine-tuned.jsonl").exists()


def test_the_judge_scorer_needs_a_judge(sim_server, tmp_path):
    result = run_fto("submit", _job(tmp_path, sim_server().url, ["judge"]))
    assert result.returncode == 2 and "the judge scorer needs an eval.judge section" in result.stderr


def test_a_run_on_sim_and_local_compares_the_two_fine_tuned_models(sim_server, tmp_path):
    server = sim_server()
    spec = {
        "name": "both",
        "data": {"train": str(ANIMALS), "validation": 0.1},
        "hyperparameters": {"epochs": 2, "batch_size": 16, "learning_rate": 3.0e-3},
        "backends": {"sim": {"url": server.url, "duration": 0.5, "min_poll_interval": 0.2, "max_poll_interval": 0.4},
                     "local": {"model": "embedded:tiny-llama"}},
        "eval": {"max_examples": 30, "max_new_tokens": 8, "scorers": ["exact_match"], "train_sample": 0},
    }  # fmt: skip
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = run_fto("run", str(path), "--backend", "sim,local", timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(run_fto("compare", "--json").stdout)
    jsonschema.validate(report, json.loads(run_fto("schema", "--results").stdout))  # what it says it is
    between = [c for c in report["comparisons"] if c["kind"] == "between"]
    pairs = [(c["a"]["label"], c["b"]["label"]) for c in between]
    assert pairs in ([("sim/fine-tuned", "local/fine-tuned")], [("local/fine-tuned", "sim/fine-tuned")])
    assert all(c["a"]["role"] == c["b"]["role"] == "fine_tuned" for c in between)
    (pair,) = between
    assert pair["wins"] + pair["losses"] + pair["ties"] == 30 and 0 <= pair["p_holm"] <= 1
    assert "per example" in pair["text"] and pair["text"] in run_fto("compare").stdout
    html = Path(run_fto("compare").stdout.split("report: ")[1].split()[0]).read_text()
    assert "Paired comparisons" in html and f"{pair['b']['label']} vs {pair['a']['label']}" in html
    assert f'data-kind="between">{pair["text"]}' in html
    # the dashboard's comparison page: the same test, and the examples the two fine-tuned models disagree on
    page = TestClient(create_ui_app(UiConfig()), base_url="http://127.0.0.1")
    shown = page.get(f"/experiments/{report['experiment']}/compare?show=disagree").text
    assert f'data-kind="between">{pair["text"]}' in shown and 'id="ranking"' in shown
    disagreeing = int(re.search(r"shown of (\d+) \(disagree\)", shown).group(1))  # type: ignore[union-attr]
    assert pair["wins"] + pair["losses"] <= disagreeing <= 30 and shown.count("kind-disagree") == disagreeing
