import gzip
import json

import pytest

from fto.orchestrator.data.formats import all_formats
from fto.orchestrator.data.load import read_dataset, seeded_split
from fto.orchestrator.data.read import read_records
from fto.orchestrator.errors import DataError
from tests.conftest import SHARED_DATA

TOY = SHARED_DATA / "openai-cookbook" / "toy_chat_fine_tuning.jsonl"
DRONE = SHARED_DATA / "openai-cookbook" / "drone_training.jsonl"


@pytest.mark.parametrize(("path", "count"), [(TOY, 5), (DRONE, 40)])
def test_reads_the_cookbook_files_and_writes_them_back_unchanged(path, count):
    original = [json.loads(line) for line in path.read_text().splitlines()]
    conversations = list(read_records(path))
    assert len(conversations) == count
    assert [all_formats()["chat"].dump(c) for c in conversations] == original


def test_tool_calls_without_content_are_valid_and_kept():
    first = next(read_records(DRONE))
    call_turns = [m for m in first.messages if m.tool_calls]
    assert call_turns and call_turns[0].content is None
    assert call_turns[0].tool_calls[0].name in {t.name for t in first.tools}
    assert first.source_line == 1


def test_gzip_is_read_transparently(tmp_path):
    packed = tmp_path / "toy.jsonl.gz"
    packed.write_bytes(gzip.compress(TOY.read_bytes()))
    assert len(list(read_records(packed))) == 5


GOOD = '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}'


@pytest.mark.parametrize(
    ("lines", "line", "field", "words"),
    [
        ([GOOD, GOOD, '{"messages": [}'], 3, None, "invalid JSON"),
        ([GOOD, GOOD.replace('"user"', '"robot"')], 2, "messages[0].role", "robot"),
        ([GOOD, '{"messages": [{"role": "user", "content": "hi"}]}'], 2, "messages", "no assistant"),
        (["[1, 2]"], 1, None, "expected a JSON object, got a number"),
        ([GOOD, "42"], 2, None, "expected a JSON object"),
        ([GOOD, '{"prompt": "x"}'], 2, "messages", "no messages list"),
        ([GOOD.replace('"hello"', "7")], 1, "messages[1].content", "string"),
        ([GOOD.replace('"content": "hello"', '"content": "x", "weight": 2')], 1, "messages[1].weight", ""),
    ],
)
def test_bad_lines_name_file_line_and_field(tmp_path, lines, line, field, words):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as exc:
        read_dataset(str(path))
    assert (exc.value.file, exc.value.line, exc.value.field) == (str(path), line, field)
    assert words in str(exc.value)


def test_invalid_utf8_names_its_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(GOOD.encode() + b"\n" + b'{"messages": "\xff"}\n')
    with pytest.raises(DataError, match="invalid UTF-8") as exc:
        read_dataset(str(path))
    assert exc.value.line == 2


def test_blank_lines_and_a_bom_are_tolerated(tmp_path):
    path = tmp_path / "ok.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.encode() + b"\n\n" + GOOD.encode() + b"\n")
    assert [c.source_line for c in read_records(path)] == [1, 3]


def test_empty_file_is_an_error(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    with pytest.raises(DataError, match="no examples"):
        read_dataset(str(path))


def test_seeded_split_is_reproducible_disjoint_and_complete():
    rows = list(read_records(DRONE))
    train, held = seeded_split(rows, 0.2, seed=7)
    again_train, again_held = seeded_split(rows, 0.2, seed=7)
    other_train, _ = seeded_split(rows, 0.2, seed=8)
    assert [r.source_line for r in held] == [r.source_line for r in again_held]
    assert [r.source_line for r in train] == [r.source_line for r in again_train]
    assert [r.source_line for r in train] != [r.source_line for r in other_train]
    assert len(held) == round(40 * 0.2)
    assert {r.source_line for r in train} | {r.source_line for r in held} == set(range(1, 41))
    assert not {r.source_line for r in train} & {r.source_line for r in held}
