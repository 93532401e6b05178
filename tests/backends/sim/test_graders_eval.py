"""Graders in a job file: listed in eval.scorers they are metrics (with pass rates), compared base vs fine-tuned
with paired tests; a grader mistake is an error at its line, before anything is sent."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.conftest import ANIMALS, model_scores, run_fto

pytestmark = pytest.mark.timeout(300)

GRADERS = [
    {"name": "answer", "type": "string_check", "input": "{{ sample.output_text | trim }}",
     "reference": "{{ item.reference | trim }}", "operation": "eq", "pass_threshold": 1},
    {"name": "close", "type": "text_similarity", "input": "{{ sample.output_text }}",
     "reference": "{{ item.reference }}", "evaluation_metric": "fuzzy_match", "pass_threshold": 0.8},
    {"name": "short", "type": "python", "source": "def grade(sample, item):\n"
     "    return float(len(sample['output_text']) <= 2 * len(item['reference']) + 5)\n"},
]  # fmt: skip


def _job(tmp_path, url: str, graders: list, scorers: list[str]) -> str:
    spec = {
        "name": "graded",
        "data": {"train": str(ANIMALS), "validation": 0.1},
        "backends": {"sim": {"url": url, "duration": 0.5, "min_poll_interval": 0.2, "max_poll_interval": 0.4}},
        "graders": graders,
        "eval": {"max_examples": 30, "max_new_tokens": 8, "scorers": scorers, "train_sample": 0},
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return str(path)


def test_graders_are_metrics_with_pass_rates_and_paired_tests(sim_server, tmp_path, fto_home):
    server = sim_server()
    result = run_fto("run", _job(tmp_path, server.url, GRADERS, ["exact_match", "answer", "close", "short"]))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(run_fto("compare", "--json").stdout)
    assert report["scorers"] == ["exact_match", "answer", "answer_pass", "close", "close_pass", "short"]
    scores = model_scores(report)
    for model in ("sim/base", "sim/fine-tuned"):  # the string check is exact match by another name
        assert scores[model]["answer"] == scores[model]["exact_match"] == scores[model]["answer_pass"]
    assert scores["sim/fine-tuned"]["close"] > scores["sim/base"]["close"]  # the sim's base echoes the prompt
    assert 0 <= scores["sim/fine-tuned"]["close_pass"] <= 1
    tested = {c["scorer"] for c in report["comparisons"]}
    assert {"answer", "close", "close_pass", "short"} <= tested
    (answers,) = fto_home.glob("experiments/*/eval/sim.fine-tuned.jsonl")
    rows = [json.loads(line) for line in answers.read_text().splitlines()]
    assert all({"answer", "close", "short"} <= set(r["scores"]) for r in rows)


@pytest.mark.parametrize(
    ("graders", "scorers", "line", "says"),
    [
        ([GRADERS[0], GRADERS[0]], ["answer"], None, "grader 'answer': the name is taken (another grader)"),
        ([GRADERS[0] | {"name": "rouge_l"}], ["rouge_l"], None, "the name is taken (a built-in scorer)"),
        ([GRADERS[0] | {"input": "{{ sample.output_text"}], ["answer"], None, "template does not parse"),
        ([GRADERS[1] | {"evaluation_metric": "meteor"}], ["close"], None, "but fto does not compute"),
        ([{"name": "both", "type": "multi", "graders": {"a": GRADERS[0] | {"name": "a"}},
           "calculate_output": "a + b"}], ["both"], None, "calculate_output 'a + b'"),
        ([GRADERS[0]], ["answr"], None, "unknown scorer 'answr'"),
        ([{"name": "both", "type": "multi", "graders": {"a": GRADERS[0] | {"name": "a", "reference": "{{ x"}},
           "calculate_output": "a"}], ["both"], None, "template does not parse"),
    ],
)  # fmt: skip
def test_a_grader_mistake_is_an_error_at_its_line_and_nothing_is_sent(sim_server, tmp_path, graders, scorers, line,
                                                                      says):  # fmt: skip
    server = sim_server()
    path = _job(tmp_path, server.url, graders, scorers)
    done = run_fto("submit", path)
    assert done.returncode == 2 and says in done.stderr, done.stderr
    assert "job.yaml:" in done.stderr  # placed at a line of the file
    assert server.stats()["requests"].get("POST /v1/fine_tuning/jobs", 0) == 0
