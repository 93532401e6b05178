"""Every kind of bad file gets one clear message naming file, line and field, and a non-zero exit."""

import json
import time

import pytest

from tests.conftest import run_fto

GOOD = json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]})


def _validate(tmp_path, content: bytes, *args: str):
    path = tmp_path / "data.jsonl"
    path.write_bytes(content)
    result = run_fto("data", "validate", str(path), "--json", *args)
    assert "Traceback" not in result.stderr
    return path, result, json.loads(result.stdout) if result.stdout.startswith("{") else None


@pytest.mark.parametrize(
    ("content", "line", "code", "words"),
    [
        ((GOOD + "\n") * 3 + GOOD[:40] + "\n", 4, "invalid_json", "truncated line"),
        (
            GOOD.encode() + b"\n" + GOOD.replace("hello", "h\xe9llo").encode("latin-1") + b"\n",
            2,
            "invalid_utf8",
            "UTF-8",
        ),
        ((GOOD + "\nnull\n"), 2, "not_an_object", "got null"),
        ((GOOD + "\n" + GOOD.replace('"hello"', '["a"]') + "\n"), 2, "invalid_field", "content parts"),
        ((GOOD + "\n" + GOOD.replace('"hello"', "42") + "\n"), 2, "invalid_field", "string"),
        ((GOOD + "\n" + GOOD.replace('"user"', '"narrator"') + "\n"), 2, "unrecognized_role", "narrator"),
        (GOOD.replace('"hello"', '""') + "\n", 1, "missing_content", "empty assistant message"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", 1, "binary", "binary data"),
        (b"\xff\xfe\xfa junk \x81\x82", 1, "invalid_utf8", "UTF-8"),
        ("", None, "empty_file", "no examples"),
    ],
)
def test_bad_files_fail_with_the_place_and_the_reason(tmp_path, content, line, code, words):
    content = content.encode() if isinstance(content, str) else content
    _, result, report = _validate(tmp_path, content)
    assert result.returncode == 1
    finding = next(f for f in report["findings"] if f["code"] == code)
    assert finding["line"] == line and finding["level"] == "error" and words in finding["message"]


def test_a_bom_and_blank_lines_are_read_but_reported(tmp_path):
    _, result, report = _validate(tmp_path, b"\xef\xbb\xbf" + (GOOD + "\n\n" + GOOD + "\n").encode())
    assert result.returncode == 0 and report["examples"] == 2
    assert {(f["code"], f["line"]) for f in report["findings"]} == {("bom", 1), ("blank_line", 2)}


def test_a_json_array_is_read_element_by_element_with_lines(tmp_path):
    path = tmp_path / "data.json"
    path.write_text("[\n  " + GOOD + ",\n  " + GOOD.replace('"user"', '"bot"') + "\n]\n")
    result = run_fto("data", "validate", str(path), "--json")
    report = json.loads(result.stdout)
    assert result.returncode == 1 and report["examples"] == 1
    assert report["findings"][0]["line"] == 3 and report["findings"][0]["field"] == "messages[0].role"


def test_a_truncated_json_array_names_where_it_broke(tmp_path):
    path = tmp_path / "data.json"
    path.write_text("[\n" + GOOD + ",\n" + GOOD[:30])
    result = run_fto("data", "validate", str(path), "--json")
    report = json.loads(result.stdout)
    assert result.returncode == 1 and report["examples"] == 1
    assert report["findings"][0]["code"] == "invalid_json" and report["findings"][0]["line"] == 3


def test_a_5_mb_line_is_validated_quickly(tmp_path):
    big = json.dumps(
        {"messages": [{"role": "user", "content": "x " * 2_500_000}, {"role": "assistant", "content": "ok"}]}
    )
    started = time.perf_counter()
    _, result, report = _validate(tmp_path, (big + "\n" + GOOD + "\n").encode())
    assert result.returncode == 0 and report["examples"] == 2
    assert time.perf_counter() - started < 20


def test_a_5_mb_example_is_over_the_token_limit_for_a_target(tmp_path):
    big = json.dumps(
        {"messages": [{"role": "user", "content": "token " * 900_000}, {"role": "assistant", "content": "ok"}]}
    )
    _, result, report = _validate(tmp_path, ((big + "\n") + (GOOD + "\n") * 40).encode(), "--for", "anthropic")
    assert result.returncode == 1
    finding = next(f for f in report["findings"] if f["code"] == "too_many_tokens")
    assert finding["line"] == 1 and "over the limit of 32,000" in finding["message"]


def test_findings_are_capped_and_counted_per_code(tmp_path):
    bad = GOOD.replace('"user"', '"robot"')
    _, result, report = _validate(tmp_path, ((bad + "\n") * 50).encode(), "--show", "5")
    assert result.returncode == 1
    assert len(report["findings"]) == 5
    assert {"level": "error", "code": "unrecognized_role", "count": 50} in report["counts"]


def test_a_missing_file_is_one_line(tmp_path):
    result = run_fto("data", "validate", str(tmp_path / "nope.jsonl"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "file not found" in result.stderr
