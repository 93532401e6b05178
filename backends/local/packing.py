"""Micro-batch layouts: pad-free packed rows, and length-bucketed padded batches.

Packed: examples laid end to end in one row; position ids restart at 0 for every example, and transformers turns
them into a block-diagonal causal mask (no attention mask, no cache), so a packed row computes exactly what the
examples would alone, with no padding — the layout for CUDA, where variable-length attention kernels skip the
masked blocks. Buckets: examples sorted by length into right-padded batches — the layout for CPU, where attention
over a packed row costs the square of the whole row.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from fto.backends.local.tokenized import IGNORE, Encoded

MAX_PADDING = 0.3  # padding a bucket may add, as a fraction of its tokens (0.1 and 1.0 measured slower)


@dataclass(frozen=True)
class Row:
    """Model inputs for one micro-batch, and which example each token belongs to."""

    inputs: dict[str, Any]  # tensors, and use_cache=False
    labels: torch.Tensor
    segments: torch.Tensor  # example index (within the micro-batch) of each token
    tokens: int  # non-padding tokens


def group(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Consecutive indices grouped so each group holds at most `budget` tokens (a longer example goes alone)."""
    groups: list[list[int]] = []
    used = budget + 1
    for i, n in enumerate(lengths):
        if used + n > budget:
            groups.append([])
            used = 0
        groups[-1].append(i)
        used += n
    return groups


def packed_row(examples: Sequence[Encoded], device: torch.device) -> Row:
    """Examples packed into one row without padding: positions restart per example, so none attends across."""
    ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []
    segments: list[int] = []
    for k, e in enumerate(examples):
        ids += e.input_ids
        labels += [IGNORE, *e.labels[1:]]  # an example's first token is never predicted from the one before
        positions += range(len(e.input_ids))
        segments += [k] * len(e.input_ids)
    as_tensor = lambda x: torch.tensor([x], device=device)  # noqa: E731
    inputs = {"input_ids": as_tensor(ids), "position_ids": as_tensor(positions), "use_cache": False}
    # Where each example starts and ends, as flash-attention's varlen kernels (and varlen.py on CPU) take them.
    bounds = torch.tensor([0, *itertools.accumulate(len(e.input_ids) for e in examples)], dtype=torch.int32)
    longest = max(len(e.input_ids) for e in examples)
    inputs |= {"cu_seq_lens_q": bounds.to(device), "cu_seq_lens_k": bounds.to(device)}
    inputs |= {"max_length_q": longest, "max_length_k": longest}
    return Row(inputs, as_tensor(labels), as_tensor(segments), len(ids))


def padded_rows(examples: Sequence[Encoded], pad_id: int, device: torch.device, causal_only: bool = False) -> Row:
    """The classic layout (padding to the longest example), for comparison and for models that cannot pack.

    `causal_only` sends no attention mask: with the padding on the right, a causal model's real tokens never
    see it (it comes after them), so attention takes its fast causal path instead of a materialised mask.
    """
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    segments = torch.full((len(examples), width), -1, dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e.input_ids)
        ids[row, :n], labels[row, :n], mask[row, :n], segments[row, :n] = (
            torch.tensor(e.input_ids),
            torch.tensor(e.labels),
            1,
            row,
        )
    inputs: dict[str, Any] = {"input_ids": ids.to(device), "use_cache": False}
    if not causal_only:
        inputs["attention_mask"] = mask.to(device)
    return Row(inputs, labels.to(device), segments.to(device), sum(len(e.input_ids) for e in examples))


def bucketed_rows(examples: Sequence[Encoded], budget: int, pad_id: int, device: torch.device) -> list[list[int]]:
    """Indices of `examples` in micro-batches of similar lengths, each at most `budget` tokens padding included
    and at most MAX_PADDING of it padding.

    Sorted by length, examples pad only up to their neighbours; each attends over the square of its own length,
    where a packed row's block-diagonal mask still costs the square of the whole row (no variable-length kernel
    saves that on CPU).
    """
    groups: list[list[int]] = []
    real = 0  # tokens of the current group, without padding
    for i in sorted(range(len(examples)), key=lambda k: len(examples[k].input_ids)):
        n = len(examples[i].input_ids)  # the widest so far: sorted
        padded = n * (len(groups[-1]) + 1) if groups else 0
        if not groups or padded > budget or padded > (real + n) * (1 + MAX_PADDING):
            groups.append([])
            real = 0
        groups[-1].append(i)
        real += n
    return groups


def token_logprobs(model: torch.nn.Module, row: Row) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Log-probabilities of each labelled next token, with their example index: (logp, segment, mask).

    Only the positions whose next token is trained on go through the output layer (over the whole vocabulary it
    is the costliest matrix product at small model sizes): one packed row's own, or in a padded batch the
    columns some row trains on.
    """
    targets = row.labels[:, 1:]
    mask = targets != IGNORE
    keep = mask.any(0).nonzero().squeeze(-1)
    logits = model(**row.inputs, logits_to_keep=keep).logits.float()
    wanted, trained = targets[:, keep], mask[:, keep]
    logp = torch.log_softmax(logits, dim=-1).gather(-1, wanted.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return logp[trained], row.segments[:, 1:][:, keep][trained], mask
