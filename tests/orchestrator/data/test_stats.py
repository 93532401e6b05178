"""Token counts with the targets' real tokenizers (offline), and the cookbook's statistics and cost rules."""

import gzip
import itertools
import json
import os
import random
from pathlib import Path

import pytest

from fto.backends.base import forget_provider_info
from fto.backends.openai import OpenAIBackend
from fto.backends.tokenizers import tiktoken_encoding
from fto.orchestrator.data.source import iter_items, split_lines
from fto.orchestrator.data.stats import dataset_stats
from fto.orchestrator.data.validate import merged, validate_file
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


def test_an_encoding_read_back_from_its_kept_copy_encodes_like_tiktokens_own(fto_home, monkeypatch):
    import tiktoken

    tiktoken_encoding.cache_clear()
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    made = tiktoken_encoding("cl100k_base")  # made from tiktoken's constructor, and kept
    [kept] = (fto_home / "cache" / "tiktoken").glob("cl100k_base.*.marshal")
    tiktoken_encoding.cache_clear()
    again = tiktoken_encoding("cl100k_base")  # read back from the kept copy
    own = tiktoken.get_encoding("cl100k_base")
    text = GSM8K.read_text()[:20000] + " <|endoftext|> héllo wörld 🎉"
    assert again is not made and again.n_vocab == own.n_vocab == made.n_vocab
    assert again.encode(text, allowed_special="all") == own.encode(text, allowed_special="all")
    assert again.encode_ordinary(text) == own.encode_ordinary(text) == made.encode_ordinary(text)
    kept.write_bytes(b"damaged")  # a damaged copy is made again, not trusted
    tiktoken_encoding.cache_clear()
    assert tiktoken_encoding("cl100k_base").encode_ordinary(text) == own.encode_ordinary(text)
    assert kept.read_bytes() != b"damaged"


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


def _chat_with_problems(path: Path, rows: int) -> Path:
    """About 1 KB a line, with problems spread through the file: a BOM, blank lines, broken JSON, a reply missing,
    a reply empty, a record that is not an object."""
    rng = random.Random(7)
    words = "the model answers questions about travel food science history music sport and code".split()  # noqa: SIM905
    lines = []
    for n in range(1, rows + 1):
        user = " ".join(rng.choice(words) for _ in range(rng.randint(5, 90)))
        answer = " ".join(rng.choice(words) for _ in range(rng.randint(5, 160)))
        messages = [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
        if n % 3:
            messages.insert(0, {"role": "system", "content": "You are a helpful assistant."})
        if n % 577 == 0:
            messages = messages[:-1]  # no assistant turn
        if n % 811 == 0:
            messages[-1]["content"] = ""
        line = json.dumps({"messages": messages})
        if n % 997 == 0:
            line = line[: len(line) // 2]  # cut short
        if n % 1201 == 0:
            line = "[1, 2]"
        if n % 733 == 0:
            line = ""
        lines.append(line)
    path.write_bytes(b"\xef\xbb\xbf" + ("\n".join(lines) + "\n").encode())
    return path


@pytest.mark.timeout(60)
def test_a_file_cut_into_spans_reads_as_the_same_items_with_the_same_line_numbers(tmp_path):
    path = _chat_with_problems(tmp_path / "chat.jsonl", 1500)
    data = path.read_bytes()
    whole = [(item.line, item.obj, item.code) for item in iter_items(path)]
    for parts in (2, 3, 7):
        spans = split_lines(path, parts)
        assert spans is not None and len(spans) == parts and spans[0].start == 0 and spans[-1].end == len(data)
        for before, after in itertools.pairwise(spans):
            assert before.end == after.start and data[after.start - 1 : after.start] == b"\n"
            assert after.first_line == data.count(b"\n", 0, after.start) + 1
        pieces = [(item.line, item.obj, item.code) for span in spans for item in iter_items(path, span)]
        assert pieces == whole
    gz = tmp_path / "chat.jsonl.gz"
    gz.write_bytes(gzip.compress(data))
    array = tmp_path / "array.json"
    array.write_text(json.dumps([{"messages": []}] * 3, indent=1))
    pretty = tmp_path / "one.json"
    pretty.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}, indent=2))
    assert [split_lines(p, 2) for p in (gz, array, pretty)] == [None, None, None]


@pytest.mark.timeout(60)
def test_a_file_checked_in_spans_gives_the_report_of_one_pass(tmp_path):
    path = _chat_with_problems(tmp_path / "chat.jsonl", 2500)
    whole = validate_file(path, "openai", max_shown=50)
    spans = split_lines(path, 3)
    assert spans is not None
    parts = merged([validate_file(path, "openai", max_shown=50, span=span) for span in spans], max_shown=50)
    assert parts.as_dict() == whole.as_dict()
    assert whole.errors > 4 and {f.line for f in whole.shown} >= {577, 997, 1154, 1201, 2402}  # in every span
    assert [f.code for f in whole.shown if f.line == 1] == ["bom"]


@pytest.mark.timeout(120)
def test_stats_of_a_file_read_by_every_core_match_those_read_by_one_process(tmp_path):
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one core: a file is read by one process")
    path = _chat_with_problems(tmp_path / "chat.jsonl", 2500)  # 2.5 MB: cut in two, a forked process each
    assert path.stat().st_size > 2 * 2**20
    apart = run_fto("data", "stats", str(path), "--for", "openai", "--json")
    os.environ["FTO_DATA_PROCESSES"] = "1"
    try:
        alone = run_fto("data", "stats", str(path), "--for", "openai", "--json")
    finally:
        del os.environ["FTO_DATA_PROCESSES"]
    assert apart.returncode == alone.returncode and apart.stderr == alone.stderr
    assert json.loads(apart.stdout) == json.loads(alone.stdout)
    figures = json.loads(alone.stdout)
    assert figures["examples"] > 2400 and figures["billing_tokens"] > 0 and figures["validation"]["errors"] > 4
    os.environ["FTO_DATA_PROCESSES"] = "two"
    try:
        wrong = run_fto("data", "stats", str(path))
    finally:
        del os.environ["FTO_DATA_PROCESSES"]
    assert wrong.returncode != 0 and "Traceback" not in wrong.stderr
    assert "FTO_DATA_PROCESSES: 'two' is not a number of processes" in wrong.stderr
