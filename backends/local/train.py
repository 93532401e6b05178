"""The local training loop: plain PyTorch over small pieces (packing, loss, schedule, checkpoint), not a framework.

One optimizer step takes `batch_size` examples, split into micro-batches of at most `batch_tokens` tokens and
accumulated; the loss is normalised by the step's trained tokens, so packing and micro-batching change nothing
but speed. Under torchrun, each process takes its share of every step and gradients are summed across them.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from transformers import get_scheduler

from fto.backends.local.packing import Row, bucketed_rows, group, packed_row, padded_rows, token_logprobs
from fto.backends.local.precision import frozen_products_in_bf16
from fto.backends.local.tokenized import Encoded
from fto.schemas import Metric


@dataclass(frozen=True)
class TrainSettings:
    epochs: int
    batch_size: int  # examples (or pairs) per optimizer step
    learning_rate: float
    warmup_ratio: float
    seed: int
    pad_token_id: int
    batch_tokens: int = 4096  # tokens per micro-batch
    layout: Literal["packed", "buckets", "padded"] = "packed"  # packing.py: packed rows, or length buckets
    schedule: Literal["cosine", "linear"] = "cosine"
    max_grad_norm: float = 1.0
    early_stopping_patience: int | None = None  # epochs without a better validation loss
    checkpoint_every: int = 0  # steps; 0: only at the end
    method: Literal["sft", "dpo", "rft"] = "sft"
    beta: float = 0.1  # DPO; RFT: the KL weight
    step_tokens: int | None = None  # if set, a step is this many tokens of examples, not batch_size examples
    frozen_bf16: bool = False  # precision.py: frozen weights multiply in bf16 (CPUs with native bf16 products)


@dataclass
class Position:
    """Where training stands: enough, with the saved state, to continue exactly."""

    step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0
    best_valid: float = math.inf
    stale_epochs: int = 0
    history: list[float] = field(default_factory=list)


@dataclass
class StepDone:
    """One process's part of an optimizer step: its loss sum over `denominator` (the whole step's), the tokens it
    trained, DPO's pairs won, and figures of the step's own (RFT's rewards) for its metric."""

    loss_sum: float
    tokens: int
    denominator: float
    correct: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)


Pair = tuple[Encoded, Encoded]  # DPO: (chosen, rejected)
Example = Encoded | Pair  # SFT example, or DPO pair


def epoch_order(count: int, seed: int, epoch: int) -> list[int]:
    """The seeded order of `n` examples in `epoch` (the same on every run and every process)."""
    order = list(range(count))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return order


def epoch_steps(order: list[int], lengths: Sequence[int], settings: TrainSettings) -> list[list[int]]:
    """An epoch's optimizer steps: `batch_size` examples each, or as many as fit in `step_tokens` tokens."""
    if not settings.step_tokens:
        return [order[k : k + settings.batch_size] for k in range(0, len(order), settings.batch_size)]
    steps: list[list[int]] = [[]]
    used = 0
    for i in order:
        if steps[-1] and used + lengths[i] > settings.step_tokens:
            steps.append([])
            used = 0
        steps[-1].append(i)
        used += lengths[i]
    return steps


def _rank() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_sum(value: torch.Tensor) -> torch.Tensor:
    if _rank()[1] > 1:
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def _any(flag: bool) -> bool:
    """True on every process if it is true on one (so all stop at the same step, never waiting on each other)."""
    if _rank()[1] == 1:
        return flag
    value = torch.tensor(float(flag))
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value)


def _sequences(examples: Sequence[Example]) -> list[Encoded]:
    return [s for e in examples for s in (e if isinstance(e, tuple) else (e,))]


def _rows(
    examples: Sequence[Example], settings: TrainSettings, device: torch.device
) -> list[tuple[list[Example], Row]]:
    """Micro-batches within the token budget; a DPO pair always stays in one micro-batch."""
    lengths = [sum(len(x.input_ids) for x in _sequences([e])) for e in examples]
    pairs = any(isinstance(e, tuple) for e in examples)  # a pair's two sequences stay side by side, in order
    if settings.layout == "buckets" and not pairs:
        sequences = _sequences(examples)
        groups = bucketed_rows(sequences, settings.batch_tokens, settings.pad_token_id, device)
    else:
        groups = group(lengths, settings.batch_tokens)
    out = []
    for idx in groups:
        part = [examples[i] for i in idx]
        seqs = _sequences(part)
        if settings.layout == "packed":
            row = packed_row(seqs, device)
        else:  # buckets are right-padded neighbours: causal attention alone keeps the padding unseen
            row = padded_rows(seqs, settings.pad_token_id, device, causal_only=settings.layout == "buckets")
        out.append((part, row))
    return out


class Trainer:
    """The training loop: token-sized micro-batches, loss on assistant tokens only, validation, early stopping."""

    def __init__(
        self,
        model: torch.nn.Module,
        train_set: Sequence[Example],
        validation_set: Sequence[Example],
        settings: TrainSettings,
        device: torch.device,
        reference: Callable[[], Any] | None = None,
        sharded: bool = False,
    ):
        self.model, self.train_set, self.validation_set, self.settings, self.device = (
            model,
            train_set,
            validation_set,
            settings,
            device,
        )
        self.reference = reference  # DPO: a context in which the model is its reference (adapter disabled)
        self.sharded = sharded  # FSDP: the model reduces gradients across processes itself
        world = _rank()[1]
        # Several processes and no FSDP: DistributedDataParallel reduces the gradients (bucketed, during backward).
        self.ddp: DistributedDataParallel | None = None
        if world > 1 and not sharded:
            self.ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        self.policy: torch.nn.Module = self.ddp or model  # what training forwards go through
        # DDP and FSDP average gradients over processes, where our loss (divided by the global count) wants sums.
        self.grad_scale = float(world)
        self.params = [p for p in model.parameters() if p.requires_grad]
        lengths = [sum(len(x.input_ids) for x in _sequences([e])) for e in train_set]
        # Every epoch's steps are known up front (the order depends only on the seed), so the schedule is exact.
        self.plan = [
            epoch_steps(epoch_order(len(train_set), settings.seed, e), lengths, settings)
            for e in range(settings.epochs)
        ]
        self.total_steps = sum(len(steps) for steps in self.plan)
        self.optimizer = torch.optim.AdamW(self.params, lr=settings.learning_rate, weight_decay=0.0)
        warmup = int(self.total_steps * settings.warmup_ratio)
        self.scheduler = get_scheduler(
            settings.schedule, self.optimizer, num_warmup_steps=warmup, num_training_steps=self.total_steps
        )
        self.position = Position()

    # losses --------------------------------------------------------------------------------------------

    def _accumulating(self, last: bool) -> contextlib.AbstractContextManager[Any]:
        """Under DDP, micro-batches before a step's last one keep their gradients local (one reduction per step)."""
        return self.ddp.no_sync() if self.ddp is not None and not last else contextlib.nullcontext()

    def _sft_step(self, examples: Sequence[Encoded], denominator: float, weight: float) -> tuple[float, int]:
        loss_sum, tokens = 0.0, 0
        rows = _rows(examples, self.settings, self.device)
        for index, (_, row) in enumerate(rows):
            with self._accumulating(last=index == len(rows) - 1):
                logp, _, _ = token_logprobs(self.policy, row)
                loss = -logp.sum() * weight
                (loss * self.grad_scale / denominator).backward()
            loss_sum, tokens = loss_sum + float(loss.detach()), tokens + int(row.tokens * weight)
        return loss_sum, tokens

    def _pair_logps(self, model: torch.nn.Module, row: Row, count: int) -> torch.Tensor:
        logp, segment, _ = token_logprobs(model, row)
        return torch.zeros(count, device=self.device).index_add(0, segment, logp)

    def _dpo_margin(self, row: Row, count: int) -> torch.Tensor:
        """Per pair: how much more the policy prefers chosen over rejected than the reference does."""
        if self.reference is None:
            raise ValueError("DPO needs a reference model (the base with the adapter switched off)")
        policy = self._pair_logps(self.policy if self.model.training else self.model, row, count)
        with torch.no_grad(), self.reference():
            ref = self._pair_logps(self.model, row, count)
        return (policy[0::2] - ref[0::2]) - (policy[1::2] - ref[1::2])

    def _dpo_step(
        self, pairs: Sequence[tuple[Encoded, Encoded]], denominator: float, weight: float
    ) -> tuple[float, int, float]:
        loss_sum, tokens, correct = 0.0, 0, 0.0
        rows = _rows(pairs, self.settings, self.device)
        for index, (part, row) in enumerate(rows):
            with self._accumulating(last=index == len(rows) - 1):
                margin = self._dpo_margin(row, 2 * len(part))
                loss = -torch.nn.functional.logsigmoid(self.settings.beta * margin).sum() * weight
                (loss * self.grad_scale / denominator).backward()
            loss_sum, tokens = loss_sum + float(loss.detach()), tokens + int(row.tokens * weight)
            correct += float((margin > 0).sum()) * weight
        return loss_sum, tokens, correct

    def step(self, mine: Sequence[Example], chunk: Sequence[int], weight: float) -> StepDone:
        """This process's share (`mine`) of one optimizer step over `chunk`: gradients accumulated, loss summed."""
        if self.settings.method == "dpo":
            denominator = float(len(chunk))
            loss_sum, tokens, correct = self._dpo_step(cast(list[Pair], mine), denominator, weight)
            return StepDone(loss_sum, tokens, denominator, correct)
        sequences = cast(list[Encoded], mine)
        trained = float(sum(e.trained_tokens for e in sequences)) * weight
        denominator = float(_all_sum(torch.tensor(trained)))
        loss_sum, tokens = self._sft_step(sequences, denominator, weight)
        return StepDone(loss_sum, tokens, denominator)

    def trained_tokens(self) -> int:
        """Tokens the whole run trains on (every epoch's)."""
        per_epoch = sum(sum(p.trained_tokens for p in _sequences([e])) for e in self.train_set)
        return per_epoch * self.settings.epochs

    def validate(self, metric: Metric) -> None:
        """The end of an epoch: the validation figures onto its last step's metric."""
        metric.valid_loss = round(self.validation_loss(), 6)

    @torch.no_grad()
    def validation_loss(self) -> float:
        """Mean loss per trained token (DPO: per pair) over the validation set."""
        self.model.eval()
        total = torch.zeros(2)
        rank, world = _rank()
        mine = self.validation_set[rank::world]
        for k in range(0, len(mine), self.settings.batch_size):
            part = mine[k : k + self.settings.batch_size]
            if self.settings.method == "dpo":
                for chunk, row in _rows(part, self.settings, self.device):
                    margin = self._dpo_margin(row, 2 * len(chunk))
                    total += torch.tensor(
                        [float(-torch.nn.functional.logsigmoid(self.settings.beta * margin).sum()), len(chunk)]
                    )
            else:
                for _, row in _rows(part, self.settings, self.device):
                    logp, _, _ = token_logprobs(self.model, row)
                    total += torch.tensor([float(-logp.sum()), float(logp.numel())])
        total = _all_sum(total)
        self.model.train()
        return float(total[0] / max(float(total[1]), 1.0))

    # the loop ------------------------------------------------------------------------------------------

    def run(
        self,
        on_metric: Callable[[Metric], None],
        should_stop: Callable[[], bool],
        on_checkpoint: Callable[[], None],
        on_event: Callable[[str], None],
    ) -> str:
        """Train to the end; returns how it ended: 'finished', 'stopped' (cancelled) or 'early-stopped'."""
        products = frozen_products_in_bf16(self.model) if self.settings.frozen_bf16 else contextlib.nullcontext()
        with products:
            s, pos = self.settings, self.position
            rank, world = _rank()
            self.model.train()
            started_at, started_step = time.perf_counter(), pos.step
            while pos.epoch < s.epochs:
                steps = self.plan[pos.epoch]
                while pos.step_in_epoch < len(steps):
                    if _any(should_stop()):
                        return "stopped"
                    begun = time.perf_counter()
                    chunk = steps[pos.step_in_epoch]
                    mine = [self.train_set[i] for i in chunk[rank::world]]
                    # A process left without examples in this step still takes part in the gradient reduction,
                    # with another process's example at weight 0.
                    weight = 1.0 if mine else 0.0
                    mine = mine or [self.train_set[chunk[0]]]
                    done = self.step(mine, chunk, weight)
                    denominator = done.denominator
                    totals = _all_sum(torch.tensor([done.loss_sum, float(done.tokens), done.correct]))
                    norm = torch.nn.utils.clip_grad_norm_(self.params, s.max_grad_norm)
                    grad_norm = float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)
                    if not (math.isfinite(float(totals[0])) and math.isfinite(grad_norm)):  # never apply such a step
                        raise ValueError(
                            f"the training loss became {float(totals[0]) / denominator} at step {pos.step + 1} "
                            f"(gradient norm {grad_norm}): training diverged; lower hyperparameters.learning_rate"
                        )
                    lr = float(self.scheduler.get_last_lr()[0])
                    self.optimizer.step()
                    self.scheduler.step()
                    self.optimizer.zero_grad(set_to_none=True)
                    pos.step += 1
                    pos.step_in_epoch += 1
                    loss = float(totals[0]) / denominator
                    pos.history.append(loss)
                    elapsed = time.perf_counter() - started_at
                    per_step = elapsed / max(1, pos.step - started_step)
                    metric = Metric(
                        step=pos.step,
                        total_steps=self.total_steps,
                        epoch=round(pos.epoch + pos.step_in_epoch / len(steps), 4),
                        loss=round(loss, 6),
                        learning_rate=lr,
                        grad_norm=round(grad_norm, 6),
                        tokens_per_second=round(float(totals[1]) / (time.perf_counter() - begun), 1),
                        eta_seconds=round(per_step * (self.total_steps - pos.step), 1),
                    )
                    if s.method == "dpo":
                        metric.reward_accuracy = round(float(totals[2]) / denominator, 4)
                    for name, value in done.metrics.items():
                        setattr(metric, name, value)
                    last_of_epoch = pos.step_in_epoch == len(steps)
                    if last_of_epoch and self.validation_set:
                        self.validate(metric)
                    if rank == 0:
                        on_metric(metric)
                    if last_of_epoch:
                        pos.epoch += 1
                        pos.step_in_epoch = 0
                        if metric.valid_loss is not None and s.early_stopping_patience:
                            if metric.valid_loss < pos.best_valid - 1e-6:
                                pos.best_valid, pos.stale_epochs = metric.valid_loss, 0
                            else:
                                pos.stale_epochs += 1
                            if pos.stale_epochs >= s.early_stopping_patience:
                                on_event(
                                    f"early stopping after epoch {pos.epoch}: validation loss has not improved for "
                                    f"{pos.stale_epochs} epochs (best {pos.best_valid:.4f})"
                                )
                                return "early-stopped"
                    if s.checkpoint_every and pos.step % s.checkpoint_every == 0 and rank == 0 and not self.sharded:
                        on_checkpoint()
                    if last_of_epoch:
                        break  # the next epoch, in a new order
            return "finished"

    # state, for checkpoints ----------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything needed to continue training exactly: trainable weights, optimizer, schedule, position."""
        return {
            "trainable": {n: p.detach().clone() for n, p in self.model.named_parameters() if p.requires_grad},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "position": self.position.__dict__.copy(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Continue from a state written by `state()`."""
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, value in state["trainable"].items():
                params[name].copy_(value)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        self.position = Position(**state["position"])
