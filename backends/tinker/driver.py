"""The process behind one `tinker` job: fto.loop's SFT or DPO recipe, step by step, against a Tinker-compatible
service, reported into the job's folder (status, events, metrics) as the local worker reports.

    python -m fto.backends.tinker.driver JOB_FOLDER LOCK_FD

Epochs, batch size and learning rate come from the job file (the section's defaults where it says auto); the
order of examples is seeded. Each epoch ends with the validation loss; the end saves a sampler, the fine-tuned
model. A cancel (the folder's cancel file) stops it before the next step.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from fto import loop
from fto.backends.local.folder import JobFolder
from fto.backends.tinker import TinkerOptions, _loopback
from fto.backends.tinker.client import offered_models
from fto.orchestrator.secrets import redact
from fto.schemas import JobSpec, JobStatus, Metric

AUTO_EPOCHS = 3
AUTO_SAMPLES = 8  # answers per prompt when rft.samples_per_prompt is auto (as the local trainer)
AUTO_ANSWER_TOKENS = 64


def main(folder: JobFolder) -> None:
    """Train the job in `folder` to the end (or a cancel), reporting as it goes."""
    config = json.loads(folder.config.read_text())
    spec = JobSpec.model_validate(config["spec"])
    options = TinkerOptions.model_validate(config["options"])
    key = os.environ.get(options.api_key_env) or ("tml-loopback" if _loopback(options.url()) else None)
    if key is None:
        raise ValueError(f"set {options.api_key_env} to your key for {options.url()}")
    hp = spec.hyperparameters
    rank = options.rank or hp.lora.r
    model = options.model or offered_models(options.url(), key)[0]
    folder.write_status(JobStatus.RUNNING, base_model=model)
    folder.event(f"connecting to {options.url()}: LoRA rank {rank} on {model}")
    trainer = loop.connect(model, options.url(), rank=rank, seed=spec.seed, api_key=key)
    train = _rows(config["train_file"])
    validation = _rows(config["validation_file"]) if config.get("validation_file") else []
    epochs = hp.epochs if isinstance(hp.epochs, int) else AUTO_EPOCHS
    batch_size = hp.batch_size if isinstance(hp.batch_size, int) else options.batch_size
    learning_rate = hp.learning_rate or options.learning_rate
    recipe: _Sft | _Dpo | _Rft = (
        _Dpo(trainer, hp) if spec.method == "dpo" else _Rft(trainer, spec) if spec.method == "rft" else _Sft(trainer)
    )
    examples = [recipe.example(row) for row in train]
    held_out = [recipe.example(row) for row in validation]
    steps_per_epoch = -(-len(examples) // batch_size)
    total = epochs * steps_per_epoch
    folder.event(f"{len(examples)} examples, {epochs} epochs of {steps_per_epoch} steps ({spec.method})")
    step, trained_tokens, started = 0, 0, time.perf_counter()
    for epoch in range(epochs):
        order = list(range(len(examples)))
        random.Random(spec.seed * 1000 + epoch).shuffle(order)
        for first in range(0, len(order), batch_size):
            if folder.cancel_file.exists():
                folder.write_status(JobStatus.CANCELLED)
                folder.event(f"cancelled before step {step + 1}", level="warning")
                return
            batch = [examples[i] for i in order[first : first + batch_size]]
            begun = time.perf_counter()
            result = recipe.step(batch, learning_rate)
            step += 1
            tokens = recipe.tokens(batch)
            trained_tokens += tokens
            metric = Metric(step=step, total_steps=total, epoch=round(step / steps_per_epoch, 4),
                            loss=round(result.loss, 6), learning_rate=learning_rate,
                            tokens_per_second=round(tokens / max(time.perf_counter() - begun, 1e-9), 1))  # fmt: skip
            if "grad_norm" in result.metrics:
                metric.grad_norm = round(result.metrics["grad_norm"], 6)
            if spec.method == "rft":
                metric.reward = round(result.metrics["reward"], 6)
                metric.grader_errors = int(result.metrics["ungraded"])
            if first + batch_size >= len(order) and held_out and not isinstance(recipe, _Rft):
                metric.valid_loss = round(recipe.validation_loss(held_out), 6)
            folder.metric(metric)
        saved = trainer.save_state(f"{folder.path.name}-epoch-{epoch + 1}")  # the service keeps it: resumable
        folder.event(f"epoch {epoch + 1} saved as {saved}", checkpoint=saved, step=step)
    path = trainer.save_weights_for_sampler(f"{folder.path.name}-final")
    elapsed = time.perf_counter() - started
    folder.event(f"saved the fine-tuned sampler {path} after {step} steps in {elapsed:.1f} s", model=path)
    folder.write_status(JobStatus.SUCCEEDED, fine_tuned_model=path, trained_tokens=trained_tokens)


class _Sft:
    def __init__(self, trainer: loop.TrainingLoop):
        self.trainer = trainer

    def example(self, row: dict[str, Any]) -> Any:
        return loop.chat_datum(self.trainer.tokenizer, row["messages"])

    def step(self, batch: list[Any], learning_rate: float) -> loop.StepResult:
        return loop.sft_step(self.trainer, batch, learning_rate)

    def tokens(self, batch: list[Any]) -> int:
        return sum(len(d.tokens) for d in batch)

    def validation_loss(self, held_out: list[Any]) -> float:
        out = self.trainer.forward(held_out, "cross_entropy")
        weights = sum(float(d.inputs["weights"].sum()) for d in held_out) or 1.0
        return out.metrics["loss:sum"] / weights


class _Dpo:
    """Pairs as (chosen, rejected) datums with their reference log-probabilities, taken before the first step."""

    def __init__(self, trainer: loop.TrainingLoop, hp: Any):
        self.trainer = trainer
        self.beta = hp.beta if isinstance(hp.beta, float | int) else 0.1

    def example(self, row: dict[str, Any]) -> Any:  # ((chosen, rejected), their reference log-probs)
        prompt = row["input"]["messages"]
        pair = (loop.chat_datum(self.trainer.tokenizer, [*prompt, *row["preferred_output"]]),
                loop.chat_datum(self.trainer.tokenizer, [*prompt, *row["non_preferred_output"]]))  # fmt: skip
        [reference] = loop.sequence_logprobs(self.trainer, [pair])
        return pair, reference

    def step(self, batch: list[Any], learning_rate: float) -> loop.StepResult:
        pairs = [p for p, _ in batch]
        result = loop.dpo_step(self.trainer, pairs, [r for _, r in batch], learning_rate, self.beta)
        return result

    def tokens(self, batch: list[Any]) -> int:
        return sum(len(c.tokens) + len(r.tokens) for (c, r), _ in batch)

    def validation_loss(self, held_out: list[Any]) -> float:
        pairs = [p for p, _ in held_out]
        now = loop.sequence_logprobs(self.trainer, pairs)
        import math

        losses = []
        for (chosen, rejected), (ref_c, ref_r) in zip(now, [r for _, r in held_out], strict=True):
            margin = self.beta * ((chosen - ref_c) - (rejected - ref_r))
            losses.append(math.log1p(math.exp(-margin)) if margin > -30 else -margin)
        return sum(losses) / max(len(losses), 1)


class _Rft:
    """GRPO with the job's grader as the reward (the same grader, sandbox and templating as the local trainer's)."""

    def __init__(self, trainer: loop.TrainingLoop, spec: JobSpec):
        from fto.orchestrator.graders.run import grade_many, sample_of

        assert spec.rft is not None  # the job file's check requires it for method: rft
        self.trainer, self.rft = trainer, spec.rft
        self.grader = next(g for g in spec.graders if g.name == spec.rft.grader)
        self.grade, self.sample_of = grade_many, sample_of
        self.max_length = spec.hyperparameters.max_seq_length or 1024

    def example(self, row: dict[str, Any]) -> Any:
        from fto.backends.local.tokenized import prompt_of

        return prompt_of(self.trainer.tokenizer, row, self.max_length)

    def step(self, batch: list[Any], learning_rate: float) -> loop.StepResult:
        group = AUTO_SAMPLES if self.rft.samples_per_prompt == "auto" else self.rft.samples_per_prompt
        tokens = AUTO_ANSWER_TOKENS if self.rft.max_new_tokens == "auto" else self.rft.max_new_tokens
        params = loop.SamplingParams(max_tokens=tokens, temperature=self.rft.temperature)

        def reward(index: int, sample: loop.Sample) -> float | None:
            text = self.trainer.tokenizer.decode(sample.tokens, skip_special_tokens=True).strip()
            [graded] = self.grade(self.grader, [self.sample_of(text)], [batch[index].item])
            if graded.value is None and self.rft.on_grader_error == "fail":
                raise ValueError(f"the grader could not score an answer: {graded.error}")
            return graded.value

        return loop.grpo_step(self.trainer, [p.input_ids for p in batch], reward, group, learning_rate, params)

    def tokens(self, batch: list[Any]) -> int:
        return sum(len(p.input_ids) for p in batch)

    def validation_loss(self, held_out: list[Any]) -> float:
        return float("nan")  # RFT reports rewards, not a loss


def _rows(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


if __name__ == "__main__":
    job_folder = JobFolder(Path(sys.argv[1]))
    lock_fd = int(sys.argv[2])  # held until this process exits: the backend's sign of life
    try:
        main(job_folder)
    except Exception as exc:  # the job fails with its cause; the traceback goes to the log
        traceback.print_exc()
        message = redact(f"{type(exc).__name__}: {exc}")
        job_folder.event(message, level="error")
        job_folder.write_status(JobStatus.FAILED, error=message)
        sys.exit(1)
