"""LLM-as-judge through the real openai and anthropic SDKs, over HTTP to a judge on 127.0.0.1."""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fto.orchestrator.errors import ConfigError
from fto.orchestrator.eval.judge import Judge
from fto.orchestrator.store import Store
from fto.schemas import JudgeSpec


def _verdict(prompt: str) -> str:
    """A judge that knows the answer is right when it contains the reference."""
    reference = re.search(r"\[Reference answer\]\n(.*?)\n\n", prompt, re.S).group(1)
    if "[Answer to rate]" in prompt:
        answer = prompt.split("[Answer to rate]\n", 1)[1]
        return "Looks right. Rating: [[9]]" if reference in answer else "Wrong. Rating: [[2]]"
    a = re.search(r"\[Answer A\]\n(.*?)\n\n\[Answer B\]", prompt, re.S).group(1)
    b = re.search(r"\[Answer B\]\n(.*?)\n\nExplain", prompt, re.S).group(1)
    return (
        "[[A]]"
        if reference in a and reference not in b
        else "[[B]]"
        if reference in b and reference not in a
        else "[[C]]"
    )


class _JudgeServer(BaseHTTPRequestHandler):
    requests: list = []  # noqa: RUF012

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _JudgeServer.requests.append((self.path, dict(self.headers)))
        prompt = body["messages"][-1]["content"]
        text = _verdict(prompt if isinstance(prompt, str) else prompt[0]["text"])
        if self.path.endswith("/chat/completions"):
            reply = {
                "id": "c1",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            }
        else:
            reply = {
                "id": "m1",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 1, "output_tokens": 1},
            }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def judge_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _JudgeServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _JudgeServer.requests.clear()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


ITEMS = [("What is 2+2?", "4", "It is 4."), ("Capital of France?", "Paris", "London")]


@pytest.mark.parametrize(
    ("provider", "path", "key"), [("openai", "/v1", "OPENAI_API_KEY"), ("anthropic", "", "ANTHROPIC_API_KEY")]
)
def test_pointwise_and_pairwise_verdicts_through_each_sdk(judge_url, monkeypatch, provider, path, key):
    monkeypatch.setenv(key, "test-key-not-secret")
    judge = Judge(JudgeSpec(provider=provider, model="judge-1", base_url=judge_url + path), Store())
    rated = judge.rate(ITEMS)
    assert [round(score, 3) for score, _, _ in rated] == [round(8 / 9, 3), round(1 / 9, 3)]
    assert "Rating: [[9]]" in rated[0][2] and "[Question]\nWhat is 2+2?" in rated[0][1]
    wins = judge.compare([("Q1", "4", "no idea", "it is 4"), ("Q2", "4", "4!", "five"), ("Q3", "x", "a", "b")])
    assert [w for w, _, _ in wins] == [1.0, 0.0, 0.5]  # each judged both ways round
    paths = {p for p, _ in _JudgeServer.requests}
    assert paths == {"/v1/chat/completions"} if provider == "openai" else paths == {"/v1/messages"}

    asked = len(_JudgeServer.requests)
    judge.rate(ITEMS)  # cached: the judge is not asked again
    assert len(_JudgeServer.requests) == asked


def test_the_judge_key_comes_only_from_the_environment(judge_url, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY in the environment"):
        Judge(JudgeSpec(provider="openai", model="judge-1", base_url=judge_url + "/v1"), Store()).rate(ITEMS[:1])


def test_mt_bench_questions_judged_end_to_end(judge_url, monkeypatch, fto_home):
    """MT-Bench's questions (FastChat), answered by a model on the sim provider, rated by the judge over HTTP."""
    from tests.backends.sim.conftest import SimServer
    from tests.conftest import SHARED_DATA, run_fto

    questions = SHARED_DATA / "fastchat" / "mt_bench_question.jsonl"
    monkeypatch.setenv("OPENAI_API_KEY", "test-key-not-secret")
    sim = SimServer()
    monkeypatch.setenv("FTO_SIM_URL", sim.url)
    result = run_fto(
        "eval", "--data", str(questions), "--target", "sim:sim-base", "--scorer", "judge",
        "--judge", "openai:judge-1", "--judge-url", judge_url + "/v1", "--max-examples", "12",
    )  # fmt: skip
    sim.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    first = json.loads(questions.read_text().splitlines()[0])["turns"][0]
    prompts = [p for p, _ in _JudgeServer.requests]
    assert len(prompts) == 12 and set(prompts) == {"/v1/chat/completions"}
    [experiment] = (fto_home / "experiments").iterdir()
    verdicts = [
        json.loads(line) for line in (experiment / "eval" / "judge-rate.sim.sim-base.jsonl").read_text().splitlines()
    ]
    assert len(verdicts) == 12 and any(first[:40] in v["prompt"] for v in verdicts)
    assert all("Rating: [[" in v["verdict"] for v in verdicts)
    scores = Store(fto_home / "fto.db").scores(experiment.name)
    assert [r["scorer"] for r in scores] == ["judge"] and 0.0 <= scores[0]["score"] <= 1.0
