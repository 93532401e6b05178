"""The local SFT loop: plain PyTorch over small pieces (batching, loss, schedule), not a framework."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from orchestrator.data.tokenized import IGNORE, Encoded
from schemas import Metric


@dataclass(frozen=True)
class TrainSettings:
    epochs: int
    batch_size: int
    learning_rate: float
    warmup_ratio: float
    seed: int
    pad_token_id: int
    max_grad_norm: float = 1.0


def batches(examples: Sequence[Encoded], size: int, rng: random.Random | None) -> list[list[Encoded]]:
    order = list(range(len(examples)))
    if rng is not None:
        rng.shuffle(order)
    return [[examples[i] for i in order[k : k + size]] for k in range(0, len(order), size)]


def collate(batch: Sequence[Encoded], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, e in enumerate(batch):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        mask[row, :n] = 1
    return {"input_ids": ids.to(device), "labels": labels.to(device), "attention_mask": mask.to(device)}


def token_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Sum of next-token losses over labelled tokens, and their count (so batches can be averaged exactly)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    targets = batch["labels"][:, 1:]
    loss = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.size(-1)).float(), targets.reshape(-1), ignore_index=IGNORE, reduction="sum"
    )
    return loss, int((targets != IGNORE).sum())


@torch.no_grad()
def validation_loss(
    model: torch.nn.Module, examples: Sequence[Encoded], s: TrainSettings, device: torch.device
) -> float:
    model.eval()
    total, count = 0.0, 0
    for batch in batches(examples, s.batch_size, rng=None):
        loss, n = token_loss(model, collate(batch, s.pad_token_id, device))
        total, count = total + float(loss), count + n
    model.train()
    return total / max(count, 1)


def schedule(step: int, total: int, warmup: int) -> float:
    """Linear warmup, then cosine decay to zero."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def train(
    model: torch.nn.Module,
    train_set: Sequence[Encoded],
    validation_set: Sequence[Encoded],
    s: TrainSettings,
    device: torch.device,
    on_metric: Callable[[Metric], None],
    should_stop: Callable[[], bool],
) -> bool:
    """Run the loop; returns False if `should_stop` interrupted it."""
    rng = random.Random(s.seed)
    steps_per_epoch = math.ceil(len(train_set) / s.batch_size)
    total = steps_per_epoch * s.epochs
    warmup = int(total * s.warmup_ratio)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=s.learning_rate, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: schedule(i, total, warmup))
    model.train()
    step = 0
    for epoch in range(s.epochs):
        for i, batch in enumerate(batches(train_set, s.batch_size, rng)):
            if should_stop():
                return False
            started = time.perf_counter()
            loss_sum, count = token_loss(model, collate(batch, s.pad_token_id, device))
            loss = loss_sum / max(count, 1)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, s.max_grad_norm)
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            tokens = sum(len(e.input_ids) for e in batch)
            metric = Metric(
                step=step,
                total_steps=total,
                epoch=round(epoch + (i + 1) / steps_per_epoch, 4),
                loss=round(float(loss), 6),
                learning_rate=lr,
                tokens_per_second=round(tokens / (time.perf_counter() - started), 1),
            )
            if i == steps_per_epoch - 1 and validation_set:
                metric.valid_loss = round(validation_loss(model, validation_set, s, device), 6)
            on_metric(metric)
    return True
