"""`fto export` of a finished local job: merged (plain transformers reproduces what `fto serve` answers), an Ollama
Modelfile naming files that exist with the chat template as TEMPLATE, vLLM's files and command, GGUF's clear
message when llama.cpp is missing; a hosted model says how to call it."""

from __future__ import annotations

from pathlib import Path

import pytest
from openai import OpenAI

from fto.backends import registry
from fto.backends.base import GenerationParams
from fto.orchestrator.store import Store
from fto.schemas import BackendSection, Message
from tests.conftest import run_fto
from tests.serving import ServeProcess

pytestmark = pytest.mark.slow  # trains a model


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import os

    home = tmp_path_factory.mktemp("export-home")
    old = os.environ.get("FTO_HOME")
    os.environ["FTO_HOME"] = str(home)
    job = tmp_path_factory.mktemp("job") / "job.yaml"
    quickstart = (Path(__file__).resolve().parents[3] / "examples" / "quickstart.yaml").read_text()
    data = Path(__file__).resolve().parents[3] / "examples" / "data" / "animals.jsonl"
    job.write_text(
        quickstart.replace("data/animals.jsonl", str(data)).replace("  scorers:", "  max_examples: 5\n  scorers:")
    )
    result = run_fto("run", str(job), timeout=400)
    assert result.returncode == 0, result.stdout + result.stderr
    [done] = Store().jobs()
    yield done, home
    if old is None:
        os.environ.pop("FTO_HOME", None)
    else:
        os.environ["FTO_HOME"] = old


def test_merged_reproduces_what_fto_serve_answers(trained, tmp_path, monkeypatch):
    job, home = trained
    monkeypatch.setenv("FTO_HOME", str(home))
    out = tmp_path / "merged"
    result = run_fto("export", job.id, "--to", "merged", "-o", str(out))
    assert result.returncode == 0, result.stderr
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    local = registry.create("local", BackendSection.model_validate({"model": "embedded:tiny-llama"}))
    system = "Answer with the animal's class: bird, mammal, fish, reptile or insect."
    server = ServeProcess(tmp_path / "serve-home", "--model", job.fine_tuned_model)
    client = OpenAI(base_url=server.url, api_key="unused")
    for animal in ("a salmon", "an eagle", "a beetle"):
        question = f"I saw {animal} near the lake. What kind of animal is it?"
        messages = [Message(role="system", content=system), Message(role="user", content=question)]
        served = local.complete(job.fine_tuned_model, messages, GenerationParams(max_new_tokens=6)).text
        chat = [m.model_dump(exclude_none=True) for m in messages]
        text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        prompt = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            ids = model.generate(prompt, max_new_tokens=6, do_sample=False)
        plain = tokenizer.decode(ids[0, prompt.shape[1] :], skip_special_tokens=True).strip()
        over_http = client.chat.completions.create(
            model=job.fine_tuned_model,
            messages=chat,
            max_tokens=6,
            temperature=0,  # type: ignore[arg-type]
        )
        assert plain == served == over_http.choices[0].message.content
    server.stop()


def test_ollama_vllm_and_gguf(trained, tmp_path, monkeypatch):
    job, home = trained
    monkeypatch.setenv("FTO_HOME", str(home))
    monkeypatch.delenv("FTO_LLAMA_CPP", raising=False)
    result = run_fto("export", job.id, "--to", "ollama", "-o", str(tmp_path / "ollama"))
    assert result.returncode == 0, result.stderr
    assert "FutureWarning" not in result.stderr and "%|" not in result.stderr  # no library noise
    moved = tmp_path / "elsewhere"
    (tmp_path / "ollama").rename(moved)  # the folder goes to another machine: every path in it still holds
    modelfile = (moved / "Modelfile").read_text().splitlines()
    named = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in modelfile if line.startswith(("FROM", "ADAPTER"))}
    assert named == {"FROM": "./base", "ADAPTER": "./adapter"}
    assert (moved / "base" / "config.json").is_file() and (moved / "adapter" / "adapter_config.json").is_file()
    assert str(home) not in (moved / "Modelfile").read_text()
    template = next(line for line in modelfile if line.startswith("TEMPLATE"))
    assert '{{ if eq .Role "system" }}<|system|>{{ .Content }}<|end|>' in template and template.endswith(
        '<|assistant|>"""'
    )
    assert 'PARAMETER stop "<|end|>"' in modelfile

    result = run_fto("export", job.id, "--to", "vllm", "-o", str(tmp_path / "vllm"))
    assert result.returncode == 0, result.stderr
    readme = (tmp_path / "vllm" / "README.md").read_text()
    assert f"--enable-lora --lora-modules fine-tuned={tmp_path / 'vllm' / 'adapter'}" in readme
    assert (tmp_path / "vllm" / "adapter" / "adapter_config.json").is_file()

    result = run_fto("export", job.id, "--to", "gguf", "-o", str(tmp_path / "gguf"))
    assert result.returncode != 0 and "llama.cpp" in result.stderr and "Traceback" not in result.stderr
    assert (tmp_path / "gguf" / "merged" / "config.json").is_file()  # the merged model is ready to convert


def test_a_hosted_model_says_how_to_call_it():
    backend = registry.create("together", BackendSection.model_validate({}))
    [line] = backend.export("ft-1", "acct/Meta-Llama-3.1-8B-Instruct-Reference-x", "merged", None)
    assert "Together serves this model: nothing to download" in line
    assert "--target together:acct/Meta-Llama-3.1-8B-Instruct-Reference-x" in line
