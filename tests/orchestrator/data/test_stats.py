"""Token counts with the targets' real tokenizers (offline), and the cookbook's statistics and cost rules."""

import json

import pytest

from fto.backends.base import forget_provider_info
from fto.backends.openai import OpenAIBackend
from fto.backends.tokenizers import tiktoken_encoding
from fto.orchestrator.data.stats import dataset_stats
from tests.conftest import SHARED_DATA, run_fto

TOY = SHARED_DATA / "openai-cookbook" / "toy_chat_fine_tuning.jsonl"
GSM8K = SHARED_DATA / "gsm8k" / "test.jsonl"


def test_openai_encodings_load_offline_from_the_shipped_files(fto_home, monkeypatch):
    tiktoken_encoding.cache_clear()  # loaded by an earlier test of this process, into another FTO_HOME
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    cl100k = tiktoken_encoding("cl100k_base")
    assert len(cl100k.encode("Eat a banana!")) == 4
    assert (
        tiktoken_encoding("o200k_base").decode(tiktoken_encoding("o200k_base").encode("héllo wörld")) == "héllo wörld"
    )
    assert any((fto_home / "cache" / "tiktoken").iterdir())


def test_token_counts_follow_the_cookbook_definition(tmp_path):
    path = tmp_path / "one.jsonl"
    messages = [
        {"role": "user", "content": "Eat a banana!"},
        {"role": "assistant", "content": "Eat a banana!", "name": "bot"},
    ]
    path.write_text(json.dumps({"messages": messages}) * 1 + "\n")
    stats = dataset_stats(path, "openai", "gpt-3.5-turbo-0125")  # cl100k_base
    enc = tiktoken_encoding("cl100k_base")
    role = {r: len(enc.encode(r)) for r in ("user", "assistant")}
    expected = (3 + role["user"] + 4) + (3 + role["assistant"] + 4 + len(enc.encode("bot")) + 1) + 3
    assert stats["total_tokens_per_example"]["max"] == expected
    assert stats["assistant_tokens_per_example"]["max"] == 4
    assert stats["tokenizer"] == "cl100k_base" and stats["tokens_exact"]


@pytest.mark.parametrize(
    ("examples", "epochs"), [(5, 20), (10, 10), (40, 3), (5000, 3), (10000, 2), (30000, 1), (1, 25)]
)
def test_default_epochs_follow_openais_rule(examples, epochs):
    assert OpenAIBackend.describe().epochs.epochs_for(examples) == epochs


def test_gsm8k_stats_and_cost():
    stats = dataset_stats(GSM8K, "openai", "gpt-4o-mini-2024-07-18")
    assert stats["examples"] == 200 and stats["format"] == "prompt_completion"
    assert stats["missing_system"] == 200 and stats["missing_user"] == 0
    totals = stats["total_tokens_per_example"]
    assert totals["min"] <= totals["p10"] <= totals["median"] <= totals["p90"] <= totals["max"]
    assert stats["over_limit"] == 0 and stats["epochs"] == 3
    assert stats["charged_tokens"] == 3 * stats["billing_tokens"]
    assert stats["estimated_cost_usd"] == pytest.approx(stats["charged_tokens"] * 3.0 / 1e6, abs=1e-4)


def test_claude_counts_are_marked_as_estimates():
    stats = dataset_stats(GSM8K, "anthropic")
    assert not stats["tokens_exact"] and "tokenizer is not available" in stats["tokenizer"]


def test_the_price_table_can_be_updated_by_the_user(fto_home):
    forget_provider_info()
    fto_home.mkdir(parents=True, exist_ok=True)
    (fto_home / "providers.json").write_text(
        json.dumps(
            {
                "openai": {
                    "models": {
                        "my-ft-base": {
                            "max_tokens_per_example": 10,
                            "encoding": "o200k_base",
                            "training_usd_per_1m": 1000,
                        }
                    }
                }
            }
        )
    )
    try:
        stats = dataset_stats(TOY, "openai", "my-ft-base")
        assert stats["over_limit"] == 5 and stats["billing_tokens"] == 50
        assert stats["estimated_cost_usd"] == pytest.approx(50 * 20 * 1000 / 1e6)
        assert OpenAIBackend.describe().models["gpt-4o-mini-2024-07-18"].training_usd_per_1m == 3.0
    finally:
        forget_provider_info()


def test_stats_cli_json_has_the_example_count():
    result = run_fto("data", "stats", str(TOY), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["examples"] == 5


def test_stats_cli_names_an_unknown_model_without_a_price():
    result = run_fto("data", "stats", str(TOY), "--for", "openai", "--model", "gpt-5-imaginary")
    assert result.returncode == 0 and "no price for gpt-5-imaginary" in result.stdout


def test_counting_in_a_second_process_gives_the_same_figures_as_counting_here(tmp_path, monkeypatch):
    import fto.orchestrator.data.stats as stats_module

    path = tmp_path / "many.jsonl"
    rows = TOY.read_text().splitlines()
    path.write_text("\n".join(rows * (700 // len(rows) + 1)) + "\n")  # windows of 256 records, texts repeating
    here = dataset_stats(path, "openai", "gpt-4o-mini-2024-07-18")
    monkeypatch.setattr(stats_module, "PROCESS_FROM_BYTES", 0)  # as for a file of 16 MB and more
    apart = dataset_stats(path, "openai", "gpt-4o-mini-2024-07-18")
    assert apart == here and here["examples"] > 700 and here["billing_tokens"] > 0
