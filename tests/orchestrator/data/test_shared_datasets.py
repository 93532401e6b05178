"""Every public dataset in tests/fixtures/data: detected, counted, converted to each target that can hold it,
round-tripped (the files are cut from ../shared/data by tests/fixtures/make_fixtures.py)."""

import json

import pytest

from fto.orchestrator.data.formats import RecordError, all_formats
from fto.orchestrator.data.read import read_records, resolve_format
from fto.orchestrator.data.source import iter_items
from fto.orchestrator.data.validate import validate_file
from fto.orchestrator.data.write import write_records
from fto.orchestrator.errors import DataError
from fto.schemas import Conversation, PreferencePair
from tests.conftest import SHARED_DATA

# file → (format detected, examples, record kind, writes back to itself exactly)
DATASETS = {
    "axolotl/alpaca.json": ("alpaca", 2, Conversation, True),
    "axolotl/conversation.json": ("sharegpt", 1, Conversation, True),
    "fastchat/dummy_conversation.json": ("sharegpt", 80, Conversation, True),
    "fastchat/mt_bench_question.jsonl": ("questions", 80, Conversation, True),
    "gsm8k/test.jsonl": ("prompt_completion", 200, Conversation, True),
    "gsm8k/train.jsonl": ("prompt_completion", 100, Conversation, True),
    "hh-rlhf/harmless-base_test.jsonl.gz": ("hh_rlhf", 308, PreferencePair, True),
    "llama-factory/alpaca_en_demo.json": ("alpaca", 120, Conversation, True),
    "llama-factory/alpaca_zh_demo.json": ("alpaca", 60, Conversation, True),
    "llama-factory/dpo_en_demo.json": ("sharegpt", 60, PreferencePair, True),
    "llama-factory/glaive_toolcall_en_demo.json": ("sharegpt", 60, Conversation, True),
    "llama-factory/identity.json": ("alpaca", 91, Conversation, True),
    "llama-factory/kto_en_demo.json": ("chat", 80, Conversation, True),
    "llama-factory/mllm_demo.json": ("chat", 6, Conversation, False),  # images are not trained on
    "llama-factory/reason_tool_use_demo_50.jsonl": ("llamafactory_v1", 20, Conversation, False),  # part order
    "llama-factory/v1_dpo_demo.jsonl": ("llamafactory_v1", 10, PreferencePair, True),
    "llama-factory/v1_sft_demo.jsonl": ("llamafactory_v1", 60, Conversation, True),
    "openai-cookbook/dbpedia_samples.jsonl": ("prompt_completion", 200, Conversation, True),
    "openai-cookbook/drone_training.jsonl": ("chat", 40, Conversation, True),
    "openai-cookbook/toy_chat_fine_tuning.jsonl": ("chat", 5, Conversation, True),
}
# JSON files that are not datasets: each is refused with a clear reason, not misread.
NOT_DATASETS = {
    "axolotl/conversation.tokenized_llama2chat.json": "pre-tokenized data",
    "llama-factory/dataset_info.json": "cannot tell the format",
    "ollama-chat-templates/chat_template_vectors.json": "cannot tell the format",
    "ollama-chat-templates/templates.jsonl": "cannot tell the format",
}
NOT_JSON = {"SOURCES.md", "LICENSE"}


def test_every_fixture_file_is_accounted_for():
    files = {
        str(p.relative_to(SHARED_DATA))
        for p in SHARED_DATA.rglob("*")
        if p.is_file() and p.name not in NOT_JSON and "testdata" not in p.parts and not p.name.startswith("LICENSE")
    }
    assert files == set(DATASETS) | set(NOT_DATASETS)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_auto_detection_reads_every_example(name):
    fmt, count, kind, _ = DATASETS[name]
    path = SHARED_DATA / name
    assert resolve_format(path).name == fmt
    records = list(read_records(path))
    assert len(records) == count
    assert all(isinstance(r, kind) for r in records)
    assert records[0].source_line is not None


@pytest.mark.parametrize("name", sorted(NOT_DATASETS))
def test_files_that_are_not_datasets_are_refused_clearly(name):
    with pytest.raises(DataError, match=NOT_DATASETS[name]) as exc:
        list(read_records(SHARED_DATA / name))
    assert exc.value.file.endswith(name) and exc.value.line == 1


@pytest.mark.parametrize("name", sorted(n for n, v in DATASETS.items() if v[3]))
def test_writing_back_to_the_source_format_is_lossless(name):
    path = SHARED_DATA / name
    fmt = resolve_format(path)
    originals = [item.obj for item in iter_items(path) if not item.warning]
    assert [fmt.dump(r) for r in read_records(path)] == originals


def _canonical(record):
    """What a lossless target must keep (OpenAI's formats have no field for visible reasoning)."""
    data = record.model_dump(exclude={"source_line", "metadata"})
    for turns in (data.get("messages"), data.get("prompt"), data.get("chosen"), data.get("rejected")):
        for message in turns or []:
            message.pop("reasoning")
    return data


WRITERS = [name for name, f in all_formats().items() if f.writable]


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_converts_to_every_target_that_can_hold_it_and_reads_back_the_same(name, tmp_path):
    records = list(read_records(SHARED_DATA / name))
    converted_somewhere = 0
    for target in WRITERS:
        holdable = []
        for r in records:
            try:
                all_formats()[target].dump(r)
            except RecordError:
                continue
            holdable.append(r)
        out = tmp_path / f"{target}.jsonl"
        written, skipped = write_records(records, out, target, skip_unwritable=True)
        assert (written, skipped) == (len(holdable), len(records) - len(holdable))
        if not written:
            continue
        converted_somewhere += 1
        back = list(read_records(out, target))
        assert len(back) == written
        if target in ("chat", "preference"):  # these hold every canonical field
            assert [_canonical(r) for r in back] == [_canonical(r) for r in holdable]
        elif "rft" in all_formats()[target].kinds:  # RFT rows are prompts: the answer becomes the reference field
            lines = [json.loads(line) for line in out.read_text().splitlines()]
            for was, now, line in zip(holdable, back, lines, strict=True):
                prompt = [m.content for m in _messages(was)]
                while _messages(was)[len(prompt) - 1].role == "assistant":
                    prompt.pop()
                assert [m.content for m in _messages(now)] == prompt
                reference = line.get("references", line).get("reference")
                assert reference == _messages(was)[-1].content or _messages(was)[-1].role != "assistant"
        else:
            assert [[m.content for m in _messages(r)] for r in back] == [
                [m.content for m in _messages(r)] for r in holdable
            ]
    assert converted_somewhere >= 3


def _messages(record):
    if isinstance(record, PreferencePair):
        return [*record.prompt, *record.chosen, *record.rejected]
    return [m for m in record.messages if not m.tool_calls]


def test_hh_rlhf_pairs_whose_prefixes_differ_are_reported_not_crashed_on():
    report = validate_file(SHARED_DATA / "hh-rlhf/harmless-base_test.jsonl.gz")
    assert report.examples == 308
    assert report.counts[("warning", "prefix_mismatch")] == 5
    mismatch = [f for f in report.shown if f.code == "prefix_mismatch"]
    assert mismatch and all(f.line for f in mismatch)


def test_system_turns_inside_sharegpt_conversations_become_system_messages():
    records = list(read_records(SHARED_DATA / "llama-factory/dpo_en_demo.json"))
    with_system = [r for r in records if any(m.role == "system" for m in r.prompt)]
    assert len(with_system) == 20
    assert all(r.prompt[0].role == "system" for r in with_system)


def test_tool_calls_from_every_tool_format_land_in_the_same_shape():
    glaive = next(
        r
        for r in read_records(SHARED_DATA / "llama-factory/glaive_toolcall_en_demo.json")
        if any(m.tool_calls for m in r.messages)
    )
    drone = next(read_records(SHARED_DATA / "openai-cookbook/drone_training.jsonl"))
    reason = next(
        r
        for r in read_records(SHARED_DATA / "llama-factory/reason_tool_use_demo_50.jsonl")
        if any(m.tool_calls for m in r.messages)
    )
    for record in (glaive, drone, reason):
        call = next(m for m in record.messages if m.tool_calls).tool_calls[0]
        assert call.name in {t.name for t in record.tools}
        assert isinstance(call.arguments, str) and call.arguments.startswith("{")
    assert any(m.role == "tool" for m in glaive.messages)
    assert any(m.reasoning for m in reason.messages)


def test_kto_labels_and_loss_weights_are_kept():
    kto = list(read_records(SHARED_DATA / "llama-factory/kto_en_demo.json"))
    assert sum(r.label for r in kto) == 47 and sum(not r.label for r in kto) == 33
    v1 = next(read_records(SHARED_DATA / "llama-factory/v1_sft_demo.jsonl"))
    assert [m.weight for m in v1.messages] == [0, 1]
