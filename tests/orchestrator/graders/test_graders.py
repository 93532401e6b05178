"""Graders: text checks and similarity, templating over a row's fields, formulas, and Python graders in their
sandbox (hostile ones each a per-sample error, quickly); model graders through the openai SDK to 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from fto.orchestrator.graders.run import Grade, grade_many, item_of, sample_of
from fto.orchestrator.store import Store
from fto.schemas import Conversation, Message
from fto.schemas.graders import Grader

pytestmark = pytest.mark.timeout(120)
GRADER: TypeAdapter[Grader] = TypeAdapter(Grader)


def _grade(definition: dict, answers: list[str], items: list[dict]) -> list[Grade]:
    return grade_many(GRADER.validate_python(definition), [sample_of(a) for a in answers], items)


def test_string_check_operations_read_the_rows_fields():
    items = [{"answer": "42"}, {"answer": "7"}]
    check = {"name": "exact", "type": "string_check", "input": "{{ sample.output_text }}",
             "reference": "{{ item.answer }}", "operation": "eq"}  # fmt: skip
    assert [g.value for g in _grade(check, ["42", "8"], items)] == [1.0, 0.0]
    assert [g.value for g in _grade(check | {"operation": "ne"}, ["42", "8"], items)] == [0.0, 1.0]
    like = check | {"operation": "like", "reference": "#### {{ item.answer }}"}
    assert [g.value for g in _grade(like, ["so #### 42", "#### 8"], items)] == [1.0, 0.0]
    ilike = check | {"operation": "ilike", "reference": "PARIS"}
    assert [g.value for g in _grade(ilike, ["it is paris", "rome"], items)] == [1.0, 0.0]


def test_a_missing_field_is_that_samples_error_not_the_runs():
    check = {"name": "exact", "type": "string_check", "input": "{{ sample.output_text }}",
             "reference": "{{ item.answer }}", "operation": "eq"}  # fmt: skip
    grades = _grade(check, ["42", "42"], [{"answer": "42"}, {"other": 1}])
    assert grades[0].value == 1.0 and grades[1].value is None and "answer" in (grades[1].error or "")


def test_text_similarity_metrics_agree_with_their_reference_libraries():
    from rapidfuzz import fuzz
    from rouge_score import rouge_scorer

    items = [{"r": "the cat sat on the mat"}]
    base = {"name": "sim", "type": "text_similarity", "input": "{{ sample.output_text }}", "reference": "{{ item.r }}"}
    answer = "the cat lay on the mat"
    fuzzy = _grade(base | {"evaluation_metric": "fuzzy_match"}, [answer], items)[0].value
    assert fuzzy == pytest.approx(fuzz.ratio(answer, items[0]["r"]) / 100)
    rouge = _grade(base | {"evaluation_metric": "rouge_l"}, [answer], items)[0].value
    expected = rouge_scorer.RougeScorer(["rougeL"]).score(items[0]["r"], answer)["rougeL"].fmeasure
    assert rouge == pytest.approx(expected) and 0 < rouge < 1
    bleu = _grade(base | {"evaluation_metric": "bleu"}, [items[0]["r"]], items)[0].value
    assert bleu == pytest.approx(1.0)
    with pytest.raises(ValueError, match="fto does not compute it"):
        GRADER.validate_python(base | {"evaluation_metric": "cosine"})


def test_a_multi_grader_combines_its_parts_by_formula():
    multi = {
        "name": "both", "type": "multi", "calculate_output": "0.25 * format + 0.75 * answer",
        "graders": {
            "format": {"name": "format", "type": "string_check", "input": "{{ sample.output_text }}",
                       "reference": "####", "operation": "like"},
            "answer": {"name": "answer", "type": "string_check", "input": "{{ sample.output_text }}",
                       "reference": "#### {{ item.answer }}", "operation": "like"},
        },
    }  # fmt: skip
    grades = _grade(multi, ["#### 4", "#### 5", "4"], [{"answer": "4"}] * 3)
    assert [g.value for g in grades] == [1.0, 0.25, 0.0]
    assert grades[1].parts == {"format": 1.0, "answer": 0.0}


def test_item_is_the_row_with_its_own_fields_and_the_reference():
    example = Conversation(messages=[Message(role="user", content="2+2?"), Message(role="assistant", content="4")],
                           metadata={"fields": {"answer": "4", "unit": "apples"}})  # fmt: skip
    item = item_of(example)
    assert item["answer"] == "4" and item["unit"] == "apples" and item["reference"] == "4"
    assert item["messages"][0] == {"role": "user", "content": "2+2?"}
    assert sample_of('{"a": 1}')["output_json"] == {"a": 1} and sample_of("x")["output_json"] is None


GOOD = """
def grade(sample, item):
    text = sample["output_text"]
    return 1.0 if text.strip().endswith("#### " + item["answer"]) else 0.0
"""


def _python(source: str, timeout: float = 2.0) -> dict:
    return {"name": "py", "type": "python", "source": source, "timeout_seconds": timeout, "memory_mb": 512}


def test_a_python_grader_grades_in_its_own_process():
    grades = _grade(_python(GOOD), ["so #### 4", "#### 5", "four"], [{"answer": "4"}] * 3)
    assert [g.value for g in grades] == [1.0, 0.0, 0.0] and not any(g.error for g in grades)


HOSTILE = {
    "loops forever": ("def grade(sample, item):\n    while True:\n        pass\n", "timed out after 2 s"),
    "allocates 10 GB": ("def grade(sample, item):\n    x = bytearray(10 * 1024 ** 3)\n    return 1.0\n",
                        "out of memory"),
    "opens a socket": ("import socket\ndef grade(sample, item):\n    return 1.0\n",
                       "does not allow importing socket"),
    "connects out": ("def grade(sample, item):\n    import http.client\n    return 1.0\n",
                     "does not allow importing http.client"),
    "reads ~/.fto": ("import os\ndef grade(sample, item):\n    return float(len(open(item['secret']).read()))\n",
                     "does not allow opening"),
    "returns NaN": ("def grade(sample, item):\n    return float('nan')\n", "not a finite number"),
    "returns text": ("def grade(sample, item):\n    return 'good'\n", "not a number"),
    "reads the environment": ("import os\ndef grade(sample, item):\n    return float(len(os.environ['OPENAI_API_KEY']))"
                              "\n", "KeyError"),
    "starts a process": ("import os\ndef grade(sample, item):\n    os.system('true')\n    return 1.0\n",
                         "does not allow os.system"),
    "kills its process": ("import os\ndef grade(sample, item):\n    os._exit(3)\n", "exited (code 3)"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_python_grader_is_a_per_sample_error_and_the_next_sample_is_graded(name, fto_home, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-never-shown")
    secret = fto_home / "secret.txt"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text("a key")
    source, why = HOSTILE[name]
    # the second sample asks for nothing hostile: a grader that misbehaves on one sample is restarted for the next
    guarded = source.replace("def grade(sample, item):\n", "def grade(sample, item):\n    if item.get('ok'):\n"
                             "        return 0.5\n", 1)  # fmt: skip
    started = time.perf_counter()
    grades = _grade(_python(guarded), ["a", "b"], [{"secret": str(secret)}, {"ok": True, "secret": str(secret)}])
    assert grades[0].value is None and why in (grades[0].error or ""), grades[0].error
    assert "sk-test" not in (grades[0].error or "")
    if name != "opens a socket":  # an import at the top fails the source itself, so every sample
        assert grades[1].value == 0.5, grades[1].error
    assert time.perf_counter() - started < 15  # the timeout is 2 s; the rest fail at once


def test_a_grader_that_prints_still_answers():
    source = "def grade(sample, item):\n    print('thinking', sample)\n    return 0.75\n"
    assert [g.value for g in _grade(_python(source), ["a", "b"], [{}, {}])] == [0.75, 0.75]


class _GraderModel(BaseHTTPRequestHandler):
    """A grader model on 127.0.0.1 speaking OpenAI's chat API: it says "correct" when the answer has the digits."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"]
        answer, reference = prompt.split("Answer: ")[1].split(" Reference: ")
        verdict = "correct" if reference.strip() in answer else "incorrect"
        text = f"Thinking... the label is {verdict}. Score: {1 if verdict == 'correct' else 0}"
        reply = {"id": "c1", "object": "chat.completion", "created": 0, "model": body["model"],
                 "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                 "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}  # fmt: skip
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def grader_model_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _GraderModel)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()


def test_label_and_score_model_graders_ask_a_model_through_its_sdk(grader_model_url, monkeypatch, fto_home):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    ask = [{"role": "user", "content": "Answer: {{ sample.output_text }} Reference: {{ item.answer }}"}]
    label = {"name": "judge", "type": "label_model", "provider": "openai", "model": "grader-1",
             "base_url": grader_model_url, "input": ask, "labels": ["correct", "incorrect"],
             "passing_labels": ["correct"]}  # fmt: skip
    items = [{"answer": "42"}, {"answer": "7"}]
    store = Store()
    grades = grade_many(GRADER.validate_python(label), [sample_of("it is 42"), sample_of("8")], items, store)
    assert [g.value for g in grades] == [1.0, 0.0]
    score = {"name": "score", "type": "score_model", "provider": "openai", "model": "grader-1",
             "base_url": grader_model_url, "input": ask, "range": [0, 1]}  # fmt: skip
    grades = grade_many(GRADER.validate_python(score), [sample_of("42!"), sample_of("no")], items, store)
    assert [g.value for g in grades] == [1.0, 0.0]


def test_fto_grade_prints_the_distribution_of_a_reward(tmp_path: Path):
    from tests.conftest import run_fto

    data = tmp_path / "math.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"{i}+{i}?"},
                          {"role": "assistant", "content": f"#### {2 * i}" if i % 4 else "I am not sure"}],
             "answer": str(2 * i)} for i in range(40)]  # fmt: skip
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    grader = tmp_path / "grader.yaml"
    grader.write_text("name: answer\ntype: python\npass_threshold: 1\nsource: |\n" + "".join(
        f"  {line}\n" for line in GOOD.strip().splitlines()))  # fmt: skip
    done = run_fto("grade", str(grader), "--data", str(data), "--json")
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["examples"] == 40 and found["graded"] == 40 and found["pass_rate"] == pytest.approx(0.75)
    assert found["mean"] == pytest.approx(0.75) and found["interval"][0] < 0.75 < found["interval"][1]
    assert sum(b["count"] for b in found["histogram"]) == 40
    shown = run_fto("grade", str(grader), "--data", str(data)).stdout
    assert "pass rate 75.0%" in shown and "grader answer (python) on 40 examples" in shown
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: answer\ntype: python\n")
    refused = run_fto("grade", str(bad), "--data", str(data))
    assert refused.returncode == 2 and "bad.yaml" in refused.stderr and "source" in refused.stderr
    unparsed = tmp_path / "unparsed.yaml"
    unparsed.write_text("name: exact\ntype: string_check\ninput: '{{ sample'\nreference: x\noperation: eq\n")
    refused = run_fto("grade", str(unparsed), "--data", str(data))
    assert refused.returncode == 2 and "unparsed.yaml: input: template does not parse" in refused.stderr
