"""`fto serve` generating as OpenAI's clients expect: chat completions (streamed and whole, n, stop, logprobs, JSON
mode, tools), text completions (echo, logprobs, token-id prompts, scoring with max_tokens 0) and responses, through
the openai SDK (sync and async) over real HTTP, every answer and every streamed chunk checked against OpenAI's
OpenAPI spec. The model is a base model served from its folder."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI, BadRequestError, NotFoundError, OpenAI

from tests.conftest import FIXTURES, run_fto
from tests.openapi import Spec
from tests.serving import ServeProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # generates with a model

QUESTION = [{"role": "user", "content": "I saw a heron by the river. What kind of animal is it?"}]


@pytest.fixture(scope="module")
def spec() -> Spec:
    spec = Spec(FIXTURES / "openai-openapi" / "openapi-subset.json", base="/v1")
    # OpenAI's API answers null for the first echoed token (nothing precedes it); the spec's types say numbers.
    logprobs = spec.document["components"]["schemas"]["CreateCompletionResponse"]["properties"]["choices"]["items"]
    fields = logprobs["properties"]["logprobs"]["anyOf"][0]["properties"]
    fields["token_logprobs"]["items"] = {"type": ["number", "null"]}
    fields["top_logprobs"]["items"] = {"anyOf": [fields["top_logprobs"]["items"], {"type": "null"}]}
    # A streamed choice's finish_reason is null until it ends (as OpenAI streams); the spec shows whole answers.
    logprobs["properties"]["finish_reason"]["type"] = ["string", "null"]
    logprobs["properties"]["finish_reason"]["enum"].append(None)
    return spec


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded tiny Llama (random weights, a tokenizer trained on the animals data), saved as a folder: the
    earlier data (tests/fixtures/animals_v1), whose seed-0 model closes a JSON object within 40 tokens."""
    from fto.backends.local import embedded

    rows = [json.loads(line) for line in (FIXTURES / "animals_v1" / "animals.jsonl").read_text().splitlines()]
    return embedded.build(rows, seed=0, out_dir=tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="module")
def server(model: Path, tmp_path_factory: pytest.TempPathFactory):
    process = ServeProcess(tmp_path_factory.mktemp("serve"), "--model", str(model))
    yield process
    process.stop()


def events(response: httpx.Response) -> list[Any]:
    """The `data:` payloads of a server-sent event stream ([DONE] as the string)."""
    lines = [line[6:] for line in response.text.split("\n") if line.startswith("data: ")]
    return [line if line == "[DONE]" else json.loads(line) for line in lines]


def greedy(client: OpenAI, model: Path, messages: list[dict[str, str]], **extra: Any) -> Any:
    """A chat completion at temperature 0 (12 tokens unless `extra` says otherwise)."""
    settings = {"temperature": 0, "max_tokens": 12, **extra}
    return client.chat.completions.create(model=str(model), messages=messages, **settings)  # type: ignore[arg-type]


def test_chat_streamed_and_whole_agree_and_every_chunk_follows_the_spec(server, model, spec):
    client = OpenAI(base_url=server.url, api_key="unused")
    whole = greedy(client, model, QUESTION)
    assert whole.choices[0].finish_reason == "length" and whole.usage and whole.usage.completion_tokens == 12
    streamed = greedy(client, model, QUESTION, stream=True, stream_options={"include_usage": True})
    chunks = list(streamed)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.choices[0].message.content
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage  # include_usage: a last chunk
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"

    body = {"model": str(model), "messages": QUESTION, "temperature": 0, "max_tokens": 12, "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    raw = events(httpx.post(f"{server.url}/chat/completions", json=body, timeout=60))
    assert raw[-1] == "[DONE]" and raw[0]["choices"][0]["delta"]["role"] == "assistant"
    for chunk in raw[:-1]:
        assert not spec.event_errors("post", "/v1/chat/completions", chunk), chunk
        assert "usage" in chunk  # null on every chunk but the last, as OpenAI sends them with include_usage
    whole_raw = httpx.post(f"{server.url}/chat/completions", json={**body, "stream": False, "stream_options": None})
    assert not spec.response_errors("post", "/v1/chat/completions", 200, whole_raw.json())


def test_n_seed_stop_and_logprobs(server, model):
    client = OpenAI(base_url=server.url, api_key="unused")
    sampled = dict(model=str(model), messages=QUESTION, temperature=1.0, max_tokens=8, n=3, seed=7)
    first, again = client.chat.completions.create(**sampled), client.chat.completions.create(**sampled)  # type: ignore[call-overload]
    assert [c.index for c in first.choices] == [0, 1, 2]
    assert [c.message.content for c in first.choices] == [c.message.content for c in again.choices]  # seeded
    assert first.usage and first.usage.completion_tokens == sum(8 for _ in first.choices)  # all ran to the limit

    text = greedy(client, model, QUESTION).choices[0].message.content
    assert text and len(text) > 4
    stop = text[2:4]
    stopped = greedy(client, model, QUESTION, stop=[stop, "never"]).choices[0]
    assert stopped.finish_reason == "stop" and stopped.message.content == text[: text.index(stop)].rstrip()

    scored = greedy(client, model, QUESTION, logprobs=True, top_logprobs=3).choices[0]
    assert scored.logprobs and scored.logprobs.content and len(scored.logprobs.content) == 12
    for token in scored.logprobs.content:
        assert len(token.top_logprobs) == 3 and token.logprob <= 0
        assert token.logprob == pytest.approx(max(t.logprob for t in token.top_logprobs))  # greedy: the likeliest
        assert token.bytes == list(token.token.encode())


def test_json_mode_gives_a_json_object_even_from_an_untrained_model(server, model):
    client = OpenAI(base_url=server.url, api_key="unused")
    free = greedy(client, model, QUESTION, max_tokens=40).choices[0].message.content
    with pytest.raises(ValueError):
        json.loads(free or "")  # untrained: not JSON by itself
    reply = greedy(client, model, QUESTION, max_tokens=40, response_format={"type": "json_object"}).choices[0]
    assert reply.finish_reason == "stop" and isinstance(json.loads(reply.message.content or ""), dict)


def test_sixteen_async_streams_share_the_batch_and_each_gets_its_own_greedy_reply(server, model):
    questions = [[{"role": "user", "content": f"What kind of animal is a {a}?"}] for a in ANIMAL_NAMES]
    client = OpenAI(base_url=server.url, api_key="unused")
    alone = [greedy(client, model, q, max_tokens=10).choices[0].message.content for q in questions]

    async def together() -> list[str]:
        async with AsyncOpenAI(base_url=server.url, api_key="unused") as aclient:

            async def one(messages: list[dict[str, str]], delay: float) -> str:
                await asyncio.sleep(delay)  # arrivals spread out: later ones join a batch already running
                stream = await aclient.chat.completions.create(
                    model=str(model),
                    messages=messages,
                    temperature=0,
                    max_tokens=10,
                    stream=True,  # type: ignore[arg-type]
                )
                return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

            return await asyncio.gather(*(one(q, 0.01 * i) for i, q in enumerate(questions)))

    assert asyncio.run(together()) == alone


ANIMAL_NAMES = ["cat", "heron", "shark", "ant", "lizard", "dog", "eagle", "trout", "bee", "snake", "cow", "owl",
                "salmon", "beetle", "gecko", "horse"]  # fmt: skip


def test_completions_echo_scores_the_prompt_as_transformers_does(server, model, spec):
    import torch
    from transformers import AutoModelForCausalLM

    client = OpenAI(base_url=server.url, api_key="unused")
    tokens = [40, 41, 300, 301, 302, 500]
    scored = client.completions.create(model=str(model), prompt=[tokens], max_tokens=0, echo=True, logprobs=1)
    choice = scored.choices[0]
    assert choice.logprobs and choice.logprobs.token_logprobs and choice.logprobs.token_logprobs[0] is None
    net = AutoModelForCausalLM.from_pretrained(model).eval()
    with torch.no_grad():
        logp = torch.log_softmax(net(torch.tensor([tokens])).logits[0].float(), dim=-1)
    expected = [float(logp[i - 1, tokens[i]]) for i in range(1, len(tokens))]
    assert choice.logprobs.token_logprobs[1:] == pytest.approx(expected, abs=1e-4)
    assert scored.usage and scored.usage.prompt_tokens == len(tokens) and scored.usage.completion_tokens == 0

    body = {"model": str(model), "prompt": "The heron is a", "max_tokens": 6, "echo": True, "logprobs": 2,
            "temperature": 0}  # fmt: skip
    whole = httpx.post(f"{server.url}/completions", json=body, timeout=60).json()
    assert not spec.response_errors("post", "/v1/completions", 200, whole)
    text = whole["choices"][0]["text"]
    assert text.startswith("The heron is a") and len(whole["choices"][0]["logprobs"]["tokens"]) > 6
    chunks = events(httpx.post(f"{server.url}/completions", json={**body, "stream": True}, timeout=60))
    assert chunks[-1] == "[DONE]"
    for chunk in chunks[:-1]:
        assert not spec.event_errors("post", "/v1/completions", chunk)
    assert "".join(c["choices"][0]["text"] for c in chunks[:-1]) == text


def test_responses_whole_and_streamed(server, model, spec):
    client = OpenAI(base_url=server.url, api_key="unused")
    chat = greedy(client, model, QUESTION, max_tokens=16).choices[0].message.content
    response = client.responses.create(
        model=str(model), input=QUESTION[0]["content"], temperature=0, max_output_tokens=16
    )
    assert response.output_text == chat and response.status == "incomplete"  # it ran to max_output_tokens
    assert response.usage and response.usage.output_tokens == 16

    body = {"model": str(model), "input": [{"role": "user", "content": [{"type": "input_text",
            "text": QUESTION[0]["content"]}]}], "temperature": 0, "max_output_tokens": 16}  # fmt: skip
    assert not spec.response_errors("post", "/v1/responses", 200, httpx.post(f"{server.url}/responses", json=body,
                                                                              timeout=60).json())  # fmt: skip
    streamed = events(httpx.post(f"{server.url}/responses", json={**body, "stream": True}, timeout=60))
    kinds = [e["type"] for e in streamed]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]  # fmt: skip
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.incomplete"]  # fmt: skip
    assert [e["sequence_number"] for e in streamed] == list(range(len(streamed)))
    assert "".join(e["delta"] for e in streamed if e["type"] == "response.output_text.delta") == chat
    for event in streamed:
        assert not spec.event_errors("post", "/v1/responses", event), event["type"]


def test_refusals_name_the_field(server, model):
    client = OpenAI(base_url=server.url, api_key="unused")
    cases = [
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"response_format": {"type": "json_schema"}}, "response_format.type"),
        ({"n": 17}, "n"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"tools": [{"type": "function", "function": {"name": "weather"}}]}, "tools"),  # no tools in its template
    ]
    for extra, param in cases:
        with pytest.raises(BadRequestError) as refused:
            greedy(client, model, QUESTION, **extra)
        assert refused.value.body and refused.value.body["param"] == param, (extra, refused.value.body)  # type: ignore[index]
    with pytest.raises(BadRequestError) as refused:
        client.completions.create(model=str(model), prompt=[[10**6]], max_tokens=1)
    assert "token ids" in str(refused.value)
    with pytest.raises(BadRequestError) as refused:
        client.completions.create(model=str(model), prompt="hi", suffix="!")
    assert refused.value.body and refused.value.body["param"] == "suffix"  # type: ignore[index]
    for extra, param in (({"tools": [{"type": "web_search"}]}, "tools"), ({"previous_response_id": "r"},
                         "previous_response_id")):  # fmt: skip
        with pytest.raises(BadRequestError) as refused:
            client.responses.create(model=str(model), input="hi", **extra)  # type: ignore[call-overload]
        assert refused.value.body and refused.value.body["param"] == param  # type: ignore[index]
    with pytest.raises(NotFoundError):
        client.responses.create(model="no-such-model", input="hi")


def test_tools_reach_a_template_that_renders_them(model, tmp_path):
    """A copy of the model whose chat template lists the tools (Hermes style): the prompt carries them."""
    tooled = tmp_path / "tooled"
    shutil.copytree(model, tooled)
    config = json.loads((tooled / "tokenizer_config.json").read_text())
    template = (
        "{% if tools %}<|system|>Tools: {{ tools | tojson }}<|end|>{% endif %}"
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] or '' }}<|end|>{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    (tooled / "chat_template.jinja").write_text(template)
    (tooled / "tokenizer_config.json").write_text(json.dumps({**config, "chat_template": template}))
    server = ServeProcess(tmp_path / "home", "--model", str(tooled))
    try:
        client = OpenAI(base_url=server.url, api_key="unused")
        tool = {"type": "function", "function": {"name": "classify", "parameters": {"type": "object"}}}
        plain = greedy(client, tooled, QUESTION, max_tokens=2)
        with_tools = greedy(client, tooled, QUESTION, max_tokens=2, tools=[tool])
        assert plain.usage and with_tools.usage and with_tools.usage.prompt_tokens > plain.usage.prompt_tokens + 5
        assert greedy(client, tooled, QUESTION, max_tokens=2, tools=[tool], tool_choice="none").usage == plain.usage
    finally:
        server.stop()


def test_tool_calls_are_read_in_both_template_forms():
    from fto.orchestrator.serve.tool_calls import tool_calls

    hermes = 'Sure.<tool_call>\n{"name": "classify", "arguments": {"animal": "heron"}}\n</tool_call>'
    llama = '{"name": "classify", "parameters": {"animal": "heron"}}'
    for text in (hermes, llama):
        (call,) = tool_calls(text, {"classify"})
        assert call["type"] == "function" and call["id"].startswith("call_")
        assert call["function"] == {"name": "classify", "arguments": '{"animal": "heron"}'}
    assert tool_calls(llama, {"other"}) == []  # an unknown function is text
    assert tool_calls("a bird", {"classify"}) == []


def test_a_model_in_the_hugging_face_cache_is_served_by_its_id(model, tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    snapshot = cache / "models--fto-tests--tiny" / "snapshots" / ("0" * 40)
    shutil.copytree(model, snapshot)
    (cache / "models--fto-tests--tiny" / "refs").mkdir()
    (cache / "models--fto-tests--tiny" / "refs" / "main").write_text("0" * 40)
    env = {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    server = ServeProcess(tmp_path / "home", "--model", "fto-tests/tiny", env=env)
    try:
        client = OpenAI(base_url=server.url, api_key="unused")
        reply = client.chat.completions.create(model="fto-tests/tiny", messages=QUESTION, max_tokens=3)  # type: ignore[arg-type]
        assert reply.usage and reply.usage.completion_tokens == 3
    finally:
        server.stop()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    refused = run_fto("serve", "--model", "fto-tests/absent", "--port", "1")
    assert refused.returncode == 2 and "--model fto-tests/absent" in refused.stderr
    assert "Hugging Face cache" in refused.stderr and "Traceback" not in refused.stderr


def test_langchain_chat_openai_invokes_and_streams(server, model):
    from langchain_openai import ChatOpenAI

    client = OpenAI(base_url=server.url, api_key="unused")
    expected = greedy(client, model, QUESTION).choices[0].message.content
    llm = ChatOpenAI(base_url=server.url, api_key="unused", model=str(model), temperature=0, max_tokens=12)  # type: ignore[arg-type]
    whole = llm.invoke(QUESTION[0]["content"])
    assert whole.content == expected
    assert whole.usage_metadata and whole.usage_metadata["output_tokens"] == 12
    assert "".join(str(chunk.content) for chunk in llm.stream(QUESTION[0]["content"])) == expected


def test_the_async_client_on_text_completions_and_responses(server, model):
    """AsyncOpenAI, streamed and not, gets what the sync client gets from /completions and /responses."""
    client = OpenAI(base_url=server.url, api_key="unused")
    text = client.completions.create(model=str(model), prompt="The heron is", max_tokens=6, temperature=0)
    answer = client.responses.create(model=str(model), input="What is a heron?", max_output_tokens=16, temperature=0)

    async def asked() -> tuple[str, str, str, str]:
        async with AsyncOpenAI(base_url=server.url, api_key="unused") as aclient:
            whole = await aclient.completions.create(model=str(model), prompt="The heron is", max_tokens=6,
                                                     temperature=0)  # fmt: skip
            stream = await aclient.completions.create(model=str(model), prompt="The heron is", max_tokens=6,
                                                      temperature=0, stream=True)  # fmt: skip
            streamed = "".join([c.choices[0].text async for c in stream if c.choices])
            response = await aclient.responses.create(model=str(model), input="What is a heron?",
                                                      max_output_tokens=16, temperature=0)  # fmt: skip
            events = await aclient.responses.create(model=str(model), input="What is a heron?", max_output_tokens=16,
                                                    temperature=0, stream=True)  # fmt: skip
            deltas = "".join([e.delta async for e in events if e.type == "response.output_text.delta"])
            return whole.choices[0].text, streamed, response.output_text, deltas

    whole, streamed, response, deltas = asyncio.run(asked())
    assert whole == streamed == text.choices[0].text and len(whole) > 0
    assert response == deltas == answer.output_text and len(response) > 0
