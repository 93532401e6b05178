"""Validation findings: the cookbook's checks and what providers enforce, each with code, line and field."""

import json

import pytest

from fto.backends.base import forget_provider_info
from fto.orchestrator.data.read import load_mapping, read_records
from fto.orchestrator.data.validate import validate_file
from tests.conftest import SHARED_DATA

USER = {"role": "user", "content": "Where is the drone?"}
ANSWER = {"role": "assistant", "content": "Over the lake."}
TOOLS = [{"type": "function", "function": {"name": "locate", "parameters": {"type": "object"}}}]


def _write(tmp_path, rows, name="data.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _codes(report):
    return {(f.code, f.level, f.line, f.field) for f in report.shown}


def _call(name="locate", arguments='{"id": 1}'):
    return {
        "role": "assistant",
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": name, "arguments": arguments}}],
    }


def test_a_clean_file_has_no_findings(tmp_path):
    report = validate_file(_write(tmp_path, [{"messages": [USER, ANSWER]}] * 3))
    assert report.ok and report.examples == 3 and not report.shown


@pytest.mark.parametrize(
    ("messages", "code", "field"),
    [
        ([USER, _call(arguments='{"id": ')], "tool_call_bad_arguments", "messages[1].tool_calls[0].arguments"),
        ([USER, _call(name="fly")], "tool_call_undeclared", "messages[1].tool_calls[0].name"),
        ([USER, {**ANSWER, "weight": 0}], "no_trainable_turn", "messages"),
        ([USER, {**ANSWER, "weight": 0.5}], "invalid_weight", "messages[1].weight"),
        ([USER, {"role": "assistant", "content": "  "}], "missing_content", "messages[1].content"),
        ([{"content": "no role"}, ANSWER], "message_missing_key", "messages[0].role"),
        ([USER, USER], "example_missing_assistant_message", "messages"),
    ],
)
def test_each_error_names_its_code_line_and_field(tmp_path, messages, code, field):
    report = validate_file(_write(tmp_path, [{"messages": [USER, ANSWER]}, {"messages": messages, "tools": TOOLS}]))
    assert (code, "error", 2, field) in _codes(report)
    assert not report.ok


def test_a_tool_call_with_no_content_is_valid(tmp_path):
    tool_result = {"role": "tool", "tool_call_id": "c1", "content": '{"at": "lake"}'}
    report = validate_file(_write(tmp_path, [{"messages": [USER, _call(), tool_result, ANSWER], "tools": TOOLS}]))
    assert report.ok, report.shown


def test_role_order_is_a_warning_for_openai_and_an_error_for_bedrock(tmp_path):
    rows = [{"messages": [ANSWER, USER]}] + [{"messages": [USER, ANSWER]}] * 40
    path = _write(tmp_path, rows)
    openai = validate_file(path, "openai")
    anthropic = validate_file(path, "anthropic")
    assert ("first_turn_not_user", "warning", 1, "messages[0].role") in _codes(openai) and openai.ok
    assert ("first_turn_not_user", "error", 1, "messages[0].role") in _codes(anthropic) and not anthropic.ok
    assert ("last_turn_not_assistant", "error", 1, "messages") in _codes(anthropic)


def test_bedrock_refuses_tools_and_preference_pairs(tmp_path):
    path = _write(tmp_path, [{"messages": [USER, _call()], "tools": TOOLS}] * 40)
    assert ("tools_unsupported", "error", 1, "tools") in _codes(validate_file(path, "anthropic"))
    hh = validate_file(SHARED_DATA / "hh-rlhf" / "harmless-base_test.jsonl.gz", "anthropic")
    assert hh.counts[("error", "preference_unsupported")] == 308


def test_example_count_limits_per_target(tmp_path):
    path = _write(tmp_path, [{"messages": [USER, ANSWER]}] * 9)
    assert ("too_few_examples", "error", None, None) in _codes(validate_file(path, "openai"))
    assert validate_file(path, "local").ok


def test_file_size_limit_comes_from_the_provider_table(tmp_path, fto_home):
    forget_provider_info()
    fto_home.mkdir(parents=True, exist_ok=True)
    (fto_home / "providers.json").write_text(json.dumps({"openai": {"data": {"file_size_limit_bytes": 100}}}))
    try:
        report = validate_file(_write(tmp_path, [{"messages": [USER, ANSWER]}] * 10), "openai")
        assert ("file_too_large", "error", None, None) in {(c, lvl, ln, fld) for c, lvl, ln, fld in _codes(report)}
    finally:
        forget_provider_info()


def test_unknown_message_keys_are_an_error_for_openai_only(tmp_path):
    path = _write(tmp_path, [{"messages": [USER, {**ANSWER, "mood": "happy"}]}] * 10)
    assert ("message_unrecognized_key", "error", 1, "messages[1].mood") in _codes(validate_file(path, "openai"))
    assert validate_file(path, "local").ok


def test_identical_preference_replies_are_flagged(tmp_path):
    pair = {"input": {"messages": [USER]}, "preferred_output": [ANSWER], "non_preferred_output": [ANSWER]}
    assert ("identical_pair", "warning", 1, "rejected") in _codes(validate_file(_write(tmp_path, [pair])))


def test_llama_factory_mapping_reads_custom_columns(tmp_path):
    info = SHARED_DATA / "llama-factory" / "dataset_info.json"
    kto = list(
        read_records(SHARED_DATA / "llama-factory" / "kto_en_demo.json", mapping=load_mapping(f"{info}:kto_en_demo"))
    )
    assert len(kto) == 80 and sum(r.label for r in kto) == 47
    glaive = load_mapping(f"{info}:glaive_toolcall_en_demo")
    rows = list(read_records(SHARED_DATA / "llama-factory" / "glaive_toolcall_en_demo.json", mapping=glaive))
    assert len(rows) == 60 and any(m.tool_calls for r in rows for m in r.messages)

    custom = _write(
        tmp_path, [{"ask": "Name a bird.", "context": "", "reply": "Owl.", "persona": "Be brief."}], "c.jsonl"
    )
    entry = tmp_path / "entry.json"
    entry.write_text(
        json.dumps({"columns": {"prompt": "ask", "query": "context", "response": "reply", "system": "persona"}})
    )
    (record,) = read_records(custom, mapping=load_mapping(str(entry)))
    assert [(m.role, m.content) for m in record.messages] == [
        ("system", "Be brief."),
        ("user", "Name a bird."),
        ("assistant", "Owl."),
    ]
