"""Reinforcement fine-tuning on the local trainer: GRPO with fto's graders as the reward.

Each step takes `batch_size` prompts, samples `samples_per_prompt` answers to each from the policy as it is now
(through the continuous-batching engine, engine.py: one decode loop for every answer of the step), grades them,
and normalises each reward within its prompt's group: the advantage says how much better than its siblings an
answer was. The loss raises the log-probability of each answer token in proportion to its advantage, less `beta`
times the KL divergence from the base model (the adapter switched off), summed over the step's answer tokens and
divided by their count. One update per batch of answers, so the policy that sampled them is the one trained.
"""

from __future__ import annotations

import json
import math
import statistics
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fto.backends.local.engine import Engine, Piece, Sampling
from fto.backends.local.packing import group, packed_row, token_logprobs
from fto.backends.local.shared_lock import SharedLock
from fto.backends.local.tokenized import IGNORE, Encoded, Prompt, prompt_of  # noqa: F401  (rft's own names)
from fto.backends.local.train import StepDone, Trainer, TrainSettings
from fto.schemas import Metric

Scored = tuple[float | None, str | None, dict[str, float]]  # an answer's reward (None: ungraded), why not, parts
Reward = Callable[[list[str], list[dict[str, Any]]], list[Scored]]
VALIDATION_PROMPTS = 64  # greedy answers graded at each epoch's end


@dataclass(frozen=True)
class RftSettings:
    samples_per_prompt: int
    max_new_tokens: int
    temperature: float
    on_grader_error: str  # "skip": the answer gets no advantage; "fail": the job fails


@dataclass(frozen=True)
class Answer:
    text: str
    token_ids: tuple[int, ...]
    error: str | None = None


class Rollouts:
    """Samples answers from the policy as it is now, through the continuous-batching engine."""

    def __init__(self, model: torch.nn.Module, tokenizer: Any, device: torch.device):
        self.model = model
        self.engine = Engine(lambda _name: (model, tokenizer), SharedLock(), device)

    def sample(self, prompts: Sequence[list[int]], sampling: Sequence[Sampling]) -> list[Answer]:
        """One answer per (prompt, sampling), in order."""
        answers: list[Answer | None] = [None] * len(prompts)
        texts: list[list[str]] = [[] for _ in prompts]
        finished = threading.Semaphore(0)

        def collector(index: int) -> Callable[[Piece], None]:
            def emit(piece: Piece) -> None:
                texts[index].append(piece.text)
                if piece.finish_reason is not None or piece.error is not None:
                    answers[index] = Answer("".join(texts[index]), piece.token_ids, piece.error)
                    finished.release()

            return emit

        was_training = self.model.training
        self.model.eval()
        try:
            self.engine.submit_many(
                "policy", [(list(p), s, collector(i)) for i, (p, s) in enumerate(zip(prompts, sampling, strict=True))]
            )
            for _ in prompts:
                finished.acquire()
        finally:
            self.model.train(was_training)
        return [a for a in answers if a is not None]


class RftTrainer(Trainer):
    """The training loop of trainer.py with GRPO's step: sample, grade, normalise within groups, update."""

    def __init__(
        self,
        model: torch.nn.Module,
        prompts: Sequence[Prompt],
        validation: Sequence[Prompt],
        settings: TrainSettings,
        rft: RftSettings,
        device: torch.device,
        tokenizer: Any,
        reward: Reward,
        reference: Callable[[], Any] | None,
        log: Path | None = None,
    ):
        super().__init__(model, prompts, validation, settings, device, reference)  # type: ignore[arg-type]
        self.rft, self.reward, self.log = rft, reward, log
        self.rollouts = Rollouts(model, tokenizer, device)
        self.answer_tokens = 0  # trained on, for the job's trained_tokens

    def trained_tokens(self) -> int:
        return self.answer_tokens

    def _sampling(self, prompt_index: int, nth: int) -> Sampling:
        # Seeded by position: a resumed run samples the same answers as an uninterrupted one.
        seed = hash((self.settings.seed, self.position.step, prompt_index, nth)) & (2**62 - 1)
        return Sampling(max_new_tokens=self.rft.max_new_tokens, temperature=self.rft.temperature, seed=seed, trim=True)

    def step(self, mine: Sequence[Any], chunk: Sequence[int], weight: float) -> StepDone:
        group = self.rft.samples_per_prompt
        prompts: list[Prompt] = list(mine)
        asked = [p.input_ids for p in prompts for _ in range(group)]
        sampling = [self._sampling(i, k) for i in chunk for k in range(group)]
        answers = self.rollouts.sample(asked, sampling)
        items = [p.item for p in prompts for _ in range(group)]
        graded = self.reward([a.text for a in answers], items)
        rewards: list[float | None] = []
        errors = 0
        for answer, (value, error, _) in zip(answers, graded, strict=True):
            problem = answer.error or error
            if problem is not None or value is None or not math.isfinite(value):
                errors += 1
                if self.rft.on_grader_error == "fail":
                    raise ValueError(f"the grader could not score an answer ({problem}); rft.on_grader_error: fail")
                rewards.append(None)
            else:
                rewards.append(value)
        advantages = _group_advantages(rewards, group)
        loss_sum, kl_sum, tokens = self._update(asked, answers, advantages)
        self.answer_tokens += tokens
        scored = [r for r in rewards if r is not None]
        parts = _mean_parts([g[2] for g in graded])
        self._record(chunk, answers, rewards)
        metrics: dict[str, Any] = {
            "reward": round(statistics.fmean(scored), 6) if scored else None,
            "reward_std": round(statistics.pstdev(scored), 6) if len(scored) > 1 else None,
            "kl": round(kl_sum / max(tokens, 1), 6),
            "completion_tokens": round(statistics.fmean(len(a.token_ids) for a in answers), 2),
            "grader_errors": errors,
            "reward_parts": parts or None,
        }
        return StepDone(loss_sum, tokens, float(max(tokens, 1)), metrics=metrics)

    def _update(
        self, prompts: list[list[int]], answers: list[Answer], advantages: list[float]
    ) -> tuple[float, float, int]:
        """Gradients of the step's policy loss (already divided by its answer tokens); returns (loss, kl, tokens)."""
        sequences = [
            (Encoded(p + list(a.token_ids), [IGNORE] * len(p) + list(a.token_ids)), adv)
            for p, a, adv in zip(prompts, answers, advantages, strict=True)
            if a.token_ids
        ]
        total = sum(e.trained_tokens for e, _ in sequences)
        loss_sum = kl_sum = 0.0
        beta = self.settings.beta
        for indices in group([len(e.input_ids) for e, _ in sequences], self.settings.batch_tokens):
            part = [sequences[i] for i in indices]
            row = packed_row([e for e, _ in part], self.device)
            logp, segment, _ = token_logprobs(self.policy, row)
            advantage = torch.tensor([adv for _, adv in part], device=self.device)[segment]
            loss = -(advantage * logp).sum()
            if beta > 0 and self.reference is not None:
                with torch.no_grad(), self.reference():
                    ref, _, _ = token_logprobs(self.model, row)
                delta = ref - logp
                kl = torch.exp(delta) - delta - 1  # k3: unbiased, never negative
                loss = loss + beta * kl.sum()
                kl_sum += float(kl.detach().sum())
            (loss / max(total, 1)).backward()
            loss_sum += float(loss.detach())
        return loss_sum, kl_sum, total

    def _record(self, chunk: Sequence[int], answers: list[Answer], rewards: list[float | None]) -> None:
        """Every sampled answer with its reward, a line per prompt (rollouts.jsonl beside the job's outputs)."""
        if self.log is None:
            return
        group = self.rft.samples_per_prompt
        with open(self.log, "a", encoding="utf-8") as out:
            for n, index in enumerate(chunk):
                mine = slice(n * group, (n + 1) * group)
                line = {
                    "step": self.position.step + 1,
                    "epoch": self.position.epoch,
                    "prompt": index,
                    "answers": [a.text for a in answers[mine]],
                    "rewards": rewards[mine],
                }
                out.write(json.dumps(line) + "\n")

    def validate(self, metric: Metric) -> None:
        """Greedy answers to the validation prompts, graded: the reward the model earns without sampling luck."""
        prompts = list(self.validation_set[:VALIDATION_PROMPTS])
        greedy = Sampling(max_new_tokens=self.rft.max_new_tokens, temperature=0.0, trim=True)
        answers = self.rollouts.sample([p.input_ids for p in prompts], [greedy] * len(prompts))  # type: ignore[union-attr]
        graded = self.reward([a.text for a in answers], [p.item for p in prompts])  # type: ignore[union-attr]
        values = [v for v, _, _ in graded if v is not None and math.isfinite(v)]
        metric.valid_reward = round(statistics.fmean(values), 6) if values else None


def _group_advantages(rewards: list[float | None], group: int) -> list[float]:
    """Each reward less its group's mean, over the group's spread; 0 for an unscored answer and for a group whose
    answers all scored the same (nothing to learn from it)."""
    out: list[float] = []
    for start in range(0, len(rewards), group):
        scored = [r for r in rewards[start : start + group] if r is not None]
        mean = statistics.fmean(scored) if scored else 0.0
        spread = statistics.pstdev(scored) if len(scored) > 1 else 0.0
        for r in rewards[start : start + group]:
            out.append(0.0 if r is None or spread < 1e-8 else (r - mean) / (spread + 1e-4))
    return out


def _mean_parts(parts: list[dict[str, float]]) -> dict[str, float]:
    names = {name for p in parts for name in p}
    return {n: round(statistics.fmean(p[n] for p in parts if n in p), 6) for n in sorted(names)}
