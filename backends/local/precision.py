"""The frozen weights' matrix products in bfloat16, on CPUs that multiply bf16 natively (AVX512-BF16, AMX).

LoRA trains small fp32 adapters over a frozen base, and the base's products are most of a step. On such a CPU a
bf16 product runs about 4× the fp32 rate, so each frozen linear layer multiplies by a bf16 copy of its weight and
hands back fp32. Everything else stays fp32: the adapters, their sum with the base's output, norms, attention,
the loss. (Autocasting whole activations to bf16 instead rounds a young adapter's small delta away: measured, the
mean loss 21% worse; this way it is equal to 4 digits — docs/benchmarks.md.) The fp32 weights are untouched, so
saving, merging and evaluation see the model as loaded; the copies cost half the frozen weights' size while
training.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator

import torch
import torch.nn.functional as F


def cpu_multiplies_bf16() -> bool:
    """Whether this CPU has native bf16 matrix products (where it has not, bf16 is emulated and slower)."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch's own CPU probes (private: guarded)
    return any(bool(getattr(torch.cpu, probe, lambda: False)()) for probe in probes)


def _bf16_product(weight: torch.Tensor, bias: torch.Tensor | None, inputs: torch.Tensor) -> torch.Tensor:
    return F.linear(inputs.to(weight.dtype), weight, bias).to(inputs.dtype)


@contextlib.contextmanager
def frozen_products_in_bf16(model: torch.nn.Module) -> Iterator[int]:
    """Within: every frozen `nn.Linear` of `model` multiplies in bf16 (yields how many). Trainable ones — the
    adapters, and layers trained in full — stay fp32."""
    # Packed rows meet a new length every step, and oneDNN keeps a compiled product per shape (1,024 by default:
    # measured +120 MB). A Llama step needs 8 (four weight shapes, forward and backward); read at first use.
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "8")
    frozen = [m for m in model.modules() if type(m) is torch.nn.Linear and not m.weight.requires_grad]
    for layer in frozen:
        bias = None if layer.bias is None else layer.bias.detach().to(torch.bfloat16)
        layer.forward = functools.partial(_bf16_product, layer.weight.detach().to(torch.bfloat16), bias)  # type: ignore[method-assign]
    try:
        yield len(frozen)
    finally:
        for layer in frozen:
            del layer.forward
