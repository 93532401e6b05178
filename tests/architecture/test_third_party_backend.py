"""A backend that lives only under tests/ works everywhere fto asks about providers, with no core change.

tests/fixtures/fto_parrot is installed the way pip would install a package: its module plus a dist-info whose
entry points add the backend and its training format. Its rules, tokenizer and prices exist nowhere else.
"""

from __future__ import annotations

import json
import os
import shutil
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO, model_scores, models_by_label, run_fto

PARROT = Path(__file__).resolve().parents[1] / "fixtures" / "fto_parrot"


@pytest.fixture
def parrot_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = tmp_path / "site"
    shutil.copytree(PARROT, site / "fto_parrot", ignore=shutil.ignore_patterns("__pycache__"))
    dist = site / "fto_parrot-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fto-parrot\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[fto.backends]\nparrot = fto_parrot:ParrotBackend\n\n[fto.formats]\nparrot_lines = fto_parrot:ParrotLines\n"
    )
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    return site


def _chat(user: str, answer: str, **extra: object) -> str:
    return json.dumps(
        {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]} | extra
    )


def test_the_core_and_built_in_backends_never_name_the_plugin():
    for folder in ("orchestrator", "schemas", "backends"):
        for path in (REPO / folder).rglob("*"):
            if path.is_file() and path.suffix in (".py", ".json", ".toml"):
                assert "parrot" not in path.read_text(encoding="utf-8").lower(), path


def test_validate_applies_the_plugins_own_data_rules(parrot_plugin: Path, tmp_path: Path):
    rows = [_chat("say bird", "bird")] * 9 + [
        _chat("say it", "bird", tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}]),
        _chat("one two three four five six seven eight nine ten", "bird"),
    ]
    data = tmp_path / "few.jsonl"
    data.write_text("\n".join(rows) + "\n")

    result = run_fto("data", "validate", str(data), "--for", "parrot", "--json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    errors = {(f["code"], f["line"]) for f in report["findings"] if f["level"] == "error"}
    # its minimum (20), its refusal of tools, and its 20-token cap counted by its word tokenizer, made strict
    assert errors == {("too_few_examples", None), ("tools_unsupported", 10), ("too_many_tokens", 11)}
    assert "Parrot Cloud needs at least 20" in run_fto("data", "validate", str(data), "--for", "parrot").stdout
    assert run_fto("data", "validate", str(data), "--for", "local").returncode == 0


def test_stats_count_with_the_plugins_tokenizer_and_price(parrot_plugin: Path, tmp_path: Path):
    data = tmp_path / "words.jsonl"
    data.write_text("\n".join([_chat("say the word", "bird")] * 25) + "\n")
    result = run_fto("data", "stats", str(data), "--for", "parrot", "--json")
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    # the cookbook's per-message overhead (3 + role) plus the words: (3+1+3) + (3+1+1) + 3 reply priming
    assert stats["tokenizer"] == "parrot words" and stats["tokens_exact"]
    assert stats["total_tokens_per_example"]["max"] == 15 and stats["over_limit"] == 0
    assert stats["token_limit"] == 20 and stats["billing_tokens"] == 25 * 15 and stats["epochs"] == 2
    assert stats["estimated_cost_usd"] == pytest.approx(25 * 15 * 2 * 500.0 / 1e6)


def test_convert_writes_the_plugins_training_format(parrot_plugin: Path, tmp_path: Path):
    data, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    data.write_text(_chat("say bird", "bird") + "\n")
    result = run_fto("data", "convert", str(data), "--to", "parrot", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text()) == {"say": "say bird", "hear": "bird"}
    assert run_fto("data", "validate", str(out)).stdout.count("parrot_lines") == 1  # and read back by detection


@pytest.mark.slow
def test_run_and_compare_through_the_plugin_with_its_costs(parrot_plugin: Path, write_job):
    assert "parrot" in run_fto("backends").stdout
    schema = json.loads(run_fto("schema").stdout)
    assert schema["properties"]["backends"]["properties"]["parrot"]["properties"]["word"]["default"] == "bird"

    job = write_job({"backends": {"parrot": {"word": "bird"}}, "eval": {"max_examples": 40}})
    result = run_fto("run", str(job), "--backend", "parrot")
    assert result.returncode == 0, result.stderr
    report = json.loads(run_fto("compare", "--json").stdout)
    scores = {label: s["exact_match"] for label, s in model_scores(report).items()}
    references = next(iter((job.parent / "fto-home").rglob("eval.jsonl"))).read_text()
    expected = sum('"content":"bird"}' in row for row in references.splitlines()) / 40
    assert scores == {"parrot/base": 0.0, "parrot/fine-tuned": pytest.approx(expected)}
    assert 0 < expected < 1
    usage = {label: m["usage"] for label, m in models_by_label(report).items()}
    tuned = usage["parrot/fine-tuned"]
    assert tuned["output_tokens"] == 40  # one word per answer, counted by the plugin
    assert tuned["cost_usd"] == pytest.approx((tuned["input_tokens"] * 4.0 + 40 * 8.0) / 1e6)
    assert usage["parrot/base"]["cost_usd"] == pytest.approx(usage["parrot/base"]["input_tokens"] * 1.0 / 1e6)


def test_a_misspelt_option_of_a_plugin_backend_names_its_line(parrot_plugin: Path, write_job):
    job = write_job(
        text=textwrap.dedent(f"""\
        name: demo
        data: {{train: {write_job().parent}/../x.jsonl}}
        backends:
          parrot:
            wrod: fish
        """)
    )
    result = run_fto("submit", str(job))
    assert result.returncode == 2
    assert "job.yaml:5: backends.parrot.wrod: unknown key (did you mean 'word'?)" in result.stderr
