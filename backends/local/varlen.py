"""Variable-length attention over packed rows, for devices without a varlen kernel (CPU).

A packed row lays examples end to end. Through SDPA, transformers turns the row into one block-diagonal mask, so
attention costs the square of the whole row and takes SDPA's masked (math) path. Here each example attends over
its own slice of the row with SDPA's causal kernel, no mask: the cost of the sum of each example's square, the
same numbers. The projections around attention still run on the whole row, as one matrix product each.

The boundaries ride in the model call as flash-attention's own keyword (`cu_seq_lens_q`, cumulative lengths), so
the same packed row drives flash-attention's varlen kernel on CUDA. Without them (generation, padded batches)
this is plain SDPA.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

NAME = "fto_varlen"


def varlen_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    cu_seq_lens_q: torch.Tensor | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Attention per example of a packed row ([1, heads, tokens, dim] in, [1, tokens, heads, dim] out)."""
    if cu_seq_lens_q is None or query.shape[0] != 1:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    lengths = [end - start for start, end in itertools.pairwise(cu_seq_lens_q.tolist())]
    grouped = key.shape[1] != query.shape[1]  # grouped-query attention: fewer key/value heads
    # split, not slices: its backward is one concatenation of the parts' gradients, where each slice's backward
    # would write its part into a zeroed tensor of the whole row (measured: a tenth of a CPU step in fp32).
    parts = [
        torch.nn.functional.scaled_dot_product_attention(
            q, k, v, dropout_p=dropout, is_causal=True, scale=scaling, enable_gqa=grouped
        )
        for q, k, v in zip(query.split(lengths, 2), key.split(lengths, 2), value.split(lengths, 2), strict=True)
    ]
    return torch.cat(parts, dim=2).transpose(1, 2).contiguous(), None


def register() -> str:
    """Make `attn_implementation="fto_varlen"` known to transformers (idempotent); returns the name.

    Its mask is SDPA's: what the fallback needs, and ignored when the boundaries come with the call.
    """
    AttentionInterface.register(NAME, varlen_attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    return NAME
