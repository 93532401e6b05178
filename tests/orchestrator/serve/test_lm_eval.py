"""EleutherAI's lm-evaluation-harness, an outside client, scoring a base and a fine-tuned model through `fto serve`.

One local job fine-tunes the embedded tiny Llama on 24 GSM8K rows (question → final number) and 120 animal
questions; `fto run` scores base and fine-tuned exact match on the GSM8K rows. lm-eval then runs two tasks defined
in tests/lm_eval_tasks against `fto serve`: generation on the same GSM8K rows through `local-chat-completions`
(its exact match must equal fto's, for both models), and multiple choice on animal questions through
`local-completions` (log-likelihoods from echo + logprobs; its accuracy must equal the argmax of the same
log-likelihoods computed with plain transformers, and, for the fine-tuned model, fto's exact match).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fto.orchestrator.store import Store
from tests.conftest import ANIMALS, FIXTURES, REPO, run_fto
from tests.serving import ServeProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # trains a model, then lm-eval runs twice per model

TASKS = REPO / "tests" / "lm_eval_tasks"
CLASSES = ["bird", "mammal", "fish", "reptile", "insect"]


def chat(user: str, answer: str, system: str | None = None) -> dict:
    messages = [{"role": "system", "content": system}] if system else []
    return {"messages": [*messages, {"role": "user", "content": user}, {"role": "assistant", "content": answer}]}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The job's data, its base and adapter folders, and fto's own scores."""
    import os

    work = tmp_path_factory.mktemp("lm-eval")
    gsm8k = [json.loads(line) for line in (FIXTURES / "data" / "gsm8k" / "test.jsonl").read_text().splitlines()[:24]]
    math = [chat(row["question"], row["answer"].split("####")[-1].strip()) for row in gsm8k]
    animals = [json.loads(line) for line in ANIMALS.read_text().splitlines()[:120]]
    (work / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [*math, *math, *animals]))
    (work / "math.jsonl").write_text("".join(json.dumps(r) + "\n" for r in math))
    (work / "animals.jsonl").write_text("".join(json.dumps(r) + "\n" for r in animals[:30]))
    (work / "job.yaml").write_text(
        "name: lm-eval-agreement\nmethod: sft\ndata: {train: train.jsonl, validation: math.jsonl}\n"
        "hyperparameters: {epochs: 12, batch_size: 16, learning_rate: 3.0e-3, lora: {r: 16, alpha: 32}}\n"
        "seed: 0\nbackends: {local: {model: 'embedded:tiny-llama'}}\n"
        "eval: {data: validation, scorers: [exact_match], max_new_tokens: 24}\n"
    )
    home = work / "home"
    os.environ["FTO_HOME"] = str(home)
    try:
        ran = run_fto("run", str(work / "job.yaml"), "--backend", "local", timeout=500)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        (job,) = (home / "backends" / "local" / "jobs").iterdir()
        evaluated = run_fto("eval", "--data", str(work / "animals.jsonl"), "--scorer", "exact_match",
                            "-t", f"local:{job / 'base'}", "-t", f"local:{job / 'adapter'}")  # fmt: skip
        assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
    finally:
        del os.environ["FTO_HOME"]
    store = Store(home / "fto.db")
    scores = [row for experiment in store.experiments() for row in store.scores(experiment.id)]
    return {"work": work, "base": job / "base", "adapter": job / "adapter", "animals": animals[:30], "scores": scores}


def fto_score(trained: dict, model: str) -> float:
    """fto's exact match for a model: `base`/`fine-tuned` of the run, or a folder evaluated with --data."""
    found = [r for r in trained["scores"] if r["scorer"] == "exact_match" and r["target"] == f"local/{model}"]
    assert found, [(r["target"], r["model"]) for r in trained["scores"]]
    return float(found[0]["score"])


def lm_eval(server: ServeProcess, kind: str, model: Path, task: str, tokenizer: Path | None = None) -> dict:
    import lm_eval as harness
    from lm_eval.tasks import TaskManager

    args = {"model": str(model), "base_url": f"{server.url}/{kind}", "num_concurrent": 4, "max_retries": 1}
    if tokenizer is None:
        args |= {"tokenizer_backend": None, "tokenized_requests": False}
    else:
        args |= {"tokenizer_backend": "huggingface", "tokenizer": str(tokenizer), "tokenized_requests": True}
    model_type = "local-chat-completions" if kind == "chat/completions" else "local-completions"
    results = harness.simple_evaluate(
        model=model_type,
        model_args=args,
        tasks=[task],
        task_manager=TaskManager(include_path=str(TASKS)),
        apply_chat_template=kind == "chat/completions",
        log_samples=False,
    )
    return results["results"][task]


def test_lm_eval_scores_match_ftos_own(trained, tmp_path, monkeypatch):
    import torch
    from transformers import AutoTokenizer

    from fto.backends.local.generate import load

    work: Path = trained["work"]
    monkeypatch.chdir(tmp_path)  # lm-eval's tasks read their JSONL from the working folder
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    math = [json.loads(line) for line in (work / "math.jsonl").read_text().splitlines()]
    questions = [{"question": r["messages"][0]["content"], "answer": r["messages"][1]["content"]} for r in math]
    (tmp_path / "fto_gsm8k_tiny.jsonl").write_text("".join(json.dumps(q) + "\n" for q in questions))
    tokenizer = AutoTokenizer.from_pretrained(trained["base"])
    choices_rows = []
    for row in trained["animals"]:
        prompt = tokenizer.apply_chat_template(row["messages"][:-1], tokenize=False, add_generation_prompt=True)
        choices_rows.append(
            {"prompt": prompt, "choices": CLASSES, "gold": CLASSES.index(row["messages"][-1]["content"])}
        )
    (tmp_path / "fto_animals_mc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in choices_rows))

    server = ServeProcess(tmp_path / "home", "--model", str(trained["base"]), "--model", str(trained["adapter"]))
    try:
        for label, folder in (("base", trained["base"]), ("fine-tuned", trained["adapter"])):
            generated = lm_eval(server, "chat/completions", folder, "fto_gsm8k_tiny")
            assert generated["exact_match,none"] == pytest.approx(fto_score(trained, label)), label

            chosen = lm_eval(server, "completions", folder, "fto_animals_mc", tokenizer=trained["base"])
            net, tok = load(str(folder), torch.device("cpu"))
            right = 0
            for row in choices_rows:  # the same log-likelihoods, computed with transformers alone
                context = tok(row["prompt"])["input_ids"]
                sums = []
                for choice in CLASSES:
                    continuation = tok(choice)["input_ids"]
                    ids = torch.tensor([context + continuation])
                    with torch.no_grad():
                        logp = torch.log_softmax(net(input_ids=ids).logits[0].float(), dim=-1)
                    sums.append(sum(float(logp[len(context) + k - 1, t]) for k, t in enumerate(continuation)))
                right += max(range(len(CLASSES)), key=sums.__getitem__) == row["gold"]
            assert chosen["acc,none"] == pytest.approx(right / len(choices_rows)), label
        fine_tuned_animals = fto_score(trained, str(trained["adapter"]))
        assert fine_tuned_animals > 0.8 and chosen["acc,none"] == pytest.approx(fine_tuned_animals)
        assert fto_score(trained, "fine-tuned") > fto_score(trained, "base")  # the scores mean something
    finally:
        server.stop()
