"""`fto data convert` and `fto data split` as a user runs them."""

import json

import pytest

from fto.orchestrator.data.read import read_records
from tests.conftest import SHARED_DATA, run_fto

ALPACA = SHARED_DATA / "llama-factory" / "alpaca_en_demo.json"
HH = SHARED_DATA / "hh-rlhf" / "harmless-base_test.jsonl.gz"
TOY = SHARED_DATA / "openai-cookbook" / "toy_chat_fine_tuning.jsonl"
DRONE = SHARED_DATA / "openai-cookbook" / "drone_training.jsonl"


def test_alpaca_to_openai_chat_validates_for_openai(tmp_path):
    out = tmp_path / "chat.jsonl"
    result = run_fto("data", "convert", str(ALPACA), "--to", "chat", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "wrote 120 examples" in result.stdout
    check = run_fto("data", "validate", str(out), "--for", "openai", "--json")
    assert json.loads(check.stdout)["examples"] == 120, check.stdout


def test_hh_rlhf_to_openai_preference_refuses_then_skips_the_four_empty_replies(tmp_path):
    out = tmp_path / "dpo.jsonl"
    refused = run_fto("data", "convert", str(HH), "--to", "preference", "-o", str(out))
    assert refused.returncode == 2 and f"{HH}:87: chosen[0].content: empty assistant message" in refused.stderr
    assert not out.exists()
    result = run_fto("data", "convert", str(HH), "--to", "preference", "-o", str(out), "--skip-invalid")
    assert result.returncode == 0 and "skipped examples with 4 errors" in result.stdout
    pairs = list(read_records(out))
    assert len(pairs) == 304 and all(p.chosen[-1].role == "assistant" for p in pairs)


def test_what_a_target_cannot_hold_fails_naming_the_line_and_leaves_no_file(tmp_path):
    out = tmp_path / "bedrock.jsonl"
    result = run_fto("data", "convert", str(DRONE), "--to", "bedrock_claude", "-o", str(out))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{DRONE}:1: the bedrock_claude format cannot hold tools" in result.stderr
    assert not out.exists()


def test_skip_unwritable_leaves_out_and_counts_what_the_target_cannot_hold(tmp_path):
    out = tmp_path / "bedrock.jsonl"
    result = run_fto("data", "convert", str(TOY), "--to", "bedrock_claude", "-o", str(out), "--skip-unwritable")
    assert result.returncode == 0 and "wrote 4 examples" in result.stdout and "skipped 1" in result.stdout
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert all(set(x) <= {"system", "messages"} and x["messages"][0]["role"] == "user" for x in lines)


def test_bad_input_converts_nothing(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]}\n')
    out = tmp_path / "out.jsonl"
    result = run_fto("data", "convert", str(bad), "--to", "sharegpt", "-o", str(out))
    assert result.returncode == 2 and f"{bad}:1: messages[1].content: empty assistant message" in result.stderr
    assert not out.exists()


@pytest.mark.slow
def test_to_local_writes_token_ids_with_an_assistant_only_mask(tmp_path):
    from fto.backends.local.embedded import build_tokenizer

    model = tmp_path / "model"
    tokenizer = build_tokenizer(m.content or "" for r in read_records(TOY) for m in r.messages)
    tokenizer.save_pretrained(model)
    out = tmp_path / "local.jsonl"
    result = run_fto("data", "convert", str(TOY), "--to", "local", "--model", str(model), "-o", str(out))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 5
    for row in rows:
        assert len(row["input_ids"]) == len(row["labels"])
        trained = [t for t in row["labels"] if t != -100]
        assert 0 < len(trained) < len(row["input_ids"])


def test_split_is_seeded_complete_and_keeps_the_format(tmp_path):
    for run in ("a", "b"):
        result = run_fto("data", "split", str(ALPACA), "--validation", "0.2", "--seed", "3", "-o", str(tmp_path / run))
        assert result.returncode == 0, result.stderr
    train_a = (tmp_path / "a" / "train.jsonl").read_text()
    assert train_a == (tmp_path / "b" / "train.jsonl").read_text()
    train = [json.loads(x) for x in train_a.splitlines()]
    held = [json.loads(x) for x in (tmp_path / "a" / "validation.jsonl").read_text().splitlines()]
    assert len(held) == 24 and len(train) == 96
    assert {"instruction", "input", "output"} <= set(train[0])
    original = json.loads(ALPACA.read_text())
    key = lambda x: json.dumps(x, sort_keys=True)  # noqa: E731
    assert sorted(map(key, train + held)) == sorted(map(key, original))
