"""fto.loop's recipes on the local trainer, in process: SFT, DPO and GRPO each move the model the way they should."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fto import loop
from fto.backends.local.loop import LocalLoop, LoopError

pytestmark = pytest.mark.slow
ANIMALS = [("dog", "mammal"), ("eagle", "bird"), ("shark", "fish"), ("frog", "amphibian")]


def _trainer(tmp_path: Path) -> LocalLoop:
    return LocalLoop.open("embedded:tiny-llama", rank=8, seed=0, root=tmp_path)


def _chat(animal: str, answer: str) -> list[dict]:
    return [{"role": "user", "content": f"What class is a {animal}?"}, {"role": "assistant", "content": answer}]


@pytest.mark.timeout(120)
def test_dpo_steps_widen_the_margin_of_the_chosen_answer(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path)
    tok = trainer.tokenizer
    pairs = [(loop.chat_datum(tok, _chat(a, right)), loop.chat_datum(tok, _chat(a, "plant"))) for a, right in ANIMALS]
    reference = loop.sequence_logprobs(trainer, pairs)
    losses = [loop.dpo_step(trainer, pairs, reference, learning_rate=3e-3, beta=0.5).loss for _ in range(8)]
    assert losses[0] == pytest.approx(np.log(2), rel=1e-3)  # policy = reference at the start
    assert losses[-1] < 0.5 * losses[0]
    now = loop.sequence_logprobs(trainer, pairs)
    assert all((c - rc) - (r - rr) > 0 for (c, r), (rc, rr) in zip(now, reference, strict=True))


@pytest.mark.timeout(180)
def test_grpo_steps_raise_the_reward(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path)
    tok = trainer.tokenizer
    # Warm the random model up to answer in words first, then reward answers that contain the letter "a".
    data = [loop.chat_datum(tok, _chat(a, answer)) for a, answer in ANIMALS]
    for _ in range(10):
        loop.sft_step(trainer, data, 3e-3)
    prompts = [tok(tok.apply_chat_template(_chat(a, "")[:1], tokenize=False, add_generation_prompt=True),
                   add_special_tokens=False)["input_ids"] for a, _ in ANIMALS]  # fmt: skip

    def reward(index: int, sample: loop.Sample) -> float:
        return float("a" in tok.decode(sample.tokens, skip_special_tokens=True))

    params = loop.SamplingParams(max_tokens=8, temperature=1.0, seed=0)
    rewards = [loop.grpo_step(trainer, prompts, reward, 8, 1e-2, params).metrics["reward"] for _ in range(12)]
    assert np.mean(rewards[-4:]) > np.mean(rewards[:4]) + 0.1, rewards


@pytest.mark.timeout(60)
def test_the_local_loop_refuses_bad_data_before_any_work(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path)
    datum = loop.shifted([5, 6, 7, 8], [0, 1, 1, 1])
    before = trainer.forward([datum]).metrics["loss:sum"]
    bad = loop.Datum([5, 6], {"target_tokens": np.array([6, 7, 8]), "weights": np.ones(3, np.float32)})
    with pytest.raises(LoopError, match=r"shape \[3\]"):
        trainer.forward_backward([bad])
    with pytest.raises(LoopError, match="needs the input 'logprobs'"):
        trainer.forward_backward([datum], "importance_sampling")
    with pytest.raises(LoopError, match="not offered"):
        trainer.forward_backward([datum], "dro")
    assert trainer.forward([datum]).metrics["loss:sum"] == before  # nothing was trained
    state = trainer.save_state("s")
    with pytest.raises(LoopError, match="already exists"):
        trainer.save_state("s")
    trainer.load_state(state)
