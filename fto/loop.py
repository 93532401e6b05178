"""Training loops: your own Python loop calls `forward_backward`, `optim_step`, `sample` and `save_state`, and the
work runs on fto's local trainer or on a Tinker-compatible service, chosen by one setting.

    from fto import loop

    trainer = loop.connect("embedded:tiny-llama")                      # in this process, on the local trainer
    trainer = loop.connect("embedded:tiny-llama", url="http://127.0.0.1:8000")  # fto serve, or any Tinker service
    batch = [loop.chat_datum(trainer.tokenizer, row["messages"]) for row in rows]
    for step in range(20):
        out = loop.sft_step(trainer, batch, learning_rate=3e-3)
        print(step, out.loss)

The protocol (TrainingLoop) is the Tinker API's: a datum is the model's input tokens and, per loss, its inputs
(`target_tokens` and `weights` for cross_entropy; `target_tokens`, `logprobs` and `advantages` for
importance_sampling and ppo), all as long as the input. The recipes below (SFT, DPO, GRPO) are written once over it.
docs/loop.md has the whole story. Importing this module loads neither torch nor the tinker SDK.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

LOSSES = ("cross_entropy", "importance_sampling", "ppo")  # what every implementation offers
LossName = Literal["cross_entropy", "importance_sampling", "ppo"]


@dataclass(frozen=True)
class Datum:
    """One sequence: the model's input tokens, and the loss inputs (one value per input token)."""

    tokens: list[int]
    inputs: dict[str, np.ndarray]


@dataclass(frozen=True)
class Adam:
    """One optimizer step's settings (Tinker's AdamParams, the same defaults)."""

    learning_rate: float = 1e-4
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-12
    weight_decay: float = 0.0
    grad_clip_norm: float = 0.0  # 0: no clipping


@dataclass(frozen=True)
class Output:
    """What forward_backward returns: per datum, the loss outputs (`logprobs` of each target token), and metrics
    (`loss:sum`)."""

    outputs: list[dict[str, np.ndarray]]
    metrics: dict[str, float]


@dataclass(frozen=True)
class Sample:
    """One sampled continuation: its tokens (the stop token included), their log-probabilities, why it ended."""

    tokens: list[int]
    logprobs: list[float]
    stop_reason: Literal["stop", "length"]


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()


class TrainingLoop(Protocol):
    """A LoRA model being trained, step by step, wherever it lives."""

    tokenizer: Any

    def forward_backward(self, data: Sequence[Datum], loss_fn: LossName = "cross_entropy",
                         config: Mapping[str, float] | None = None) -> Output: ...  # fmt: skip

    def forward(self, data: Sequence[Datum], loss_fn: LossName = "cross_entropy") -> Output: ...

    def optim_step(self, adam: Adam) -> dict[str, float]: ...

    def sample(self, prompt: Sequence[int], num_samples: int, params: SamplingParams) -> list[Sample]: ...

    def save_state(self, name: str) -> str: ...

    def load_state(self, path: str) -> None: ...

    def save_weights_for_sampler(self, name: str) -> str: ...

    def close(self) -> None: ...


def connect(
    base_model: str,
    url: str | None = None,
    *,
    rank: int = 16,
    seed: int = 0,
    api_key: str | None = None,
    resume_from: str | None = None,
) -> TrainingLoop:
    """A training loop on `base_model`: in this process on the local trainer (no `url`), or on the
    Tinker-compatible service at `url` (fto serve, Tinker, Together's post-training sessions) through the tinker
    SDK. `resume_from`: a path save_state returned; training goes on from there."""
    if url is None:
        from fto.backends.local.loop import LocalLoop

        local = LocalLoop.open(base_model, rank=rank, seed=seed)
        if resume_from:
            local.load_state(resume_from)
        return local
    from fto.backends.tinker.client import TinkerLoop

    return TinkerLoop.open(url, base_model, rank=rank, seed=seed, api_key=api_key, resume_from=resume_from)


# data ------------------------------------------------------------------------------------------------------


def chat_datum(tokenizer: Any, messages: Sequence[Mapping[str, Any]]) -> Datum:
    """A conversation as a cross_entropy datum: the model reads every token and is trained on the assistant's."""
    tokens: list[int] = []
    trained: list[float] = []
    for index, message in enumerate(messages):
        text = tokenizer.apply_chat_template(list(messages[: index + 1]), tokenize=False)
        ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        fresh = ids[len(tokens) :]  # the tokens this message adds (templates render prefixes the same way)
        tokens += fresh
        trained += [1.0 if message.get("role") == "assistant" else 0.0] * len(fresh)
    return shifted(tokens, trained)


def shifted(tokens: Sequence[int], weights: Sequence[float]) -> Datum:
    """Tokens as input and next-token targets: position i reads tokens[i] and predicts tokens[i + 1]."""
    if len(tokens) < 2:
        raise ValueError("a datum needs at least two tokens")
    return Datum(
        tokens=list(tokens[:-1]),
        inputs={
            "target_tokens": np.asarray(tokens[1:], dtype=np.int64),
            "weights": np.asarray(weights[1:], dtype=np.float32),
        },
    )


# recipes ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepResult:
    loss: float  # per trained token (SFT), per pair (DPO), per answer token (GRPO)
    metrics: dict[str, float] = field(default_factory=dict)


def sft_step(trainer: TrainingLoop, batch: Sequence[Datum], learning_rate: float) -> StepResult:
    """One SFT step: the mean cross-entropy of the trained tokens, then one Adam step."""
    total = sum(float(d.inputs["weights"].sum()) for d in batch) or 1.0
    scaled = [_with(d, weights=d.inputs["weights"] / total) for d in batch]  # the loss is a mean per token
    out = trainer.forward_backward(scaled, "cross_entropy")
    step = trainer.optim_step(Adam(learning_rate=learning_rate))
    return StepResult(out.metrics["loss:sum"], {**out.metrics, **step})


def dpo_step(
    trainer: TrainingLoop,
    pairs: Sequence[tuple[Datum, Datum]],
    reference: Sequence[tuple[float, float]],
    learning_rate: float,
    beta: float = 0.1,
) -> StepResult:
    """One DPO step: -log σ(β·((π_c − ref_c) − (π_r − ref_r))) per pair, its gradient taken through the log-probs
    (the same surrogate the tinker SDK's custom losses use: weights are the loss's gradient per token)."""
    data = [d for pair in pairs for d in pair]
    forward = trainer.forward(data, "cross_entropy")
    weights, losses = [], []
    for k, (ref_chosen, ref_rejected) in enumerate(reference):
        sums = [float((forward.outputs[2 * k + j]["logprobs"] * data[2 * k + j].inputs["weights"]).sum())
                for j in (0, 1)]  # fmt: skip
        margin = beta * ((sums[0] - ref_chosen) - (sums[1] - ref_rejected))
        losses.append(math.log1p(math.exp(-margin)) if margin > -30 else -margin)
        slope = beta / (1.0 + math.exp(margin)) / len(pairs)  # −d loss / d margin, averaged over pairs
        weights += [slope, -slope]
    scaled = [_with(d, weights=d.inputs["weights"] * w) for d, w in zip(data, weights, strict=True)]
    trainer.forward_backward(scaled, "cross_entropy")
    step = trainer.optim_step(Adam(learning_rate=learning_rate))
    return StepResult(statistics.fmean(losses), step)


def sequence_logprobs(trainer: TrainingLoop, pairs: Sequence[tuple[Datum, Datum]]) -> list[tuple[float, float]]:
    """Each pair's summed log-probability of its trained tokens (DPO's reference, before training starts)."""
    data = [d for pair in pairs for d in pair]
    out = trainer.forward(data, "cross_entropy")
    sums = [float((o["logprobs"] * d.inputs["weights"]).sum()) for o, d in zip(out.outputs, data, strict=True)]
    return [(sums[2 * k], sums[2 * k + 1]) for k in range(len(pairs))]


def grpo_step(
    trainer: TrainingLoop,
    prompts: Sequence[list[int]],
    reward: Callable[[int, Sample], float | None],
    group_size: int,
    learning_rate: float,
    params: SamplingParams,
) -> StepResult:
    """One GRPO step: `group_size` samples per prompt, rewards normalised within each prompt's group, and the
    importance-sampling loss on the sampled tokens (the sampler's log-probabilities as its reference). A reward of
    None (the grader could not score the answer) leaves that answer out of its group."""
    data, rewards = [], []
    for index, prompt in enumerate(prompts):
        samples = trainer.sample(prompt, group_size, params)
        scored = [(s, r) for s in samples if (r := reward(index, s)) is not None]
        scores = [r for _, r in scored]
        rewards += scores
        if len(scores) < 2:
            continue
        mean, spread = statistics.fmean(scores), statistics.pstdev(scores)
        for sample, score in scored:
            advantage = 0.0 if spread == 0 else (score - mean) / spread
            if advantage != 0.0 and sample.tokens:
                data.append(_rollout(prompt, sample, advantage))
    tokens = sum(int((d.inputs["advantages"] != 0).sum()) for d in data) or 1
    metrics = {"reward": statistics.fmean(rewards) if rewards else 0.0, "rollouts": float(len(rewards)),
               "ungraded": float(len(prompts) * group_size - len(rewards))}  # fmt: skip
    if not data:  # every group tied: nothing to learn from this batch
        return StepResult(0.0, metrics)
    scaled = [_with(d, advantages=d.inputs["advantages"] / tokens) for d in data]
    out = trainer.forward_backward(scaled, "importance_sampling")
    step = trainer.optim_step(Adam(learning_rate=learning_rate))
    return StepResult(out.metrics["loss:sum"], {**metrics, **step})


def _rollout(prompt: Sequence[int], sample: Sample, advantage: float) -> Datum:
    full = [*prompt, *sample.tokens]
    answer_from = len(prompt) - 1  # the position that predicts the first sampled token
    n = len(full) - 1
    logprobs = np.zeros(n, dtype=np.float32)
    advantages = np.zeros(n, dtype=np.float32)
    logprobs[answer_from:] = sample.logprobs
    advantages[answer_from:] = advantage
    return Datum(
        tokens=full[:-1],
        inputs={"target_tokens": np.asarray(full[1:], dtype=np.int64), "logprobs": logprobs, "advantages": advantages},
    )


def _with(datum: Datum, **inputs: np.ndarray) -> Datum:
    return Datum(datum.tokens, {**datum.inputs, **{k: np.asarray(v, dtype=np.float32) for k, v in inputs.items()}})
