"""How much memory local training needs, from the model's shape alone (no torch): weights, adapters, gradients,
optimizer state and activations, against a device's memory.

The counts follow the usual accounting for transformer training (Rajbhandari et al., ZeRO, 2020: 16 bytes per
trained parameter with Adam in mixed precision; Korthikanti et al., 2022: activations per token and layer), written
for a Llama-shaped decoder (grouped-query attention, a gated MLP) with attention that keeps no score matrix
(SDPA/flash/varlen): per token and layer the saved tensors are the two norm inputs, q, k and v, the attention
output, the MLP's input, gate, up, activation and product: 6·H + 2·KV + 4·I elements. With gradient checkpointing
only each layer's input is kept, plus one layer's full set while it is recomputed. The output head's logits (and
their gradient) are counted once, in fp32, for the tokens of a micro-batch.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GiB = 1024**3
# The framework itself: on a CPU the trainer's process with torch, transformers, peft and the data loaded (about
# 0.5 GiB, measured 2026-12-07); on a GPU the CUDA context.
RUNTIME_BYTES = {"cpu": 0.5 * GiB, "gpu": 0.75 * GiB}


@dataclass(frozen=True)
class Shape:
    """A decoder's sizes, from its config.json."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    tied: bool

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Shape:
        def number(*keys: str, default: int | None = None) -> int:
            for key in keys:
                value = config.get(key)
                if isinstance(value, int):
                    return value
            if default is None:
                raise ValueError(f"config.json has none of {', '.join(keys)}")
            return default

        heads = number("num_attention_heads", "n_head")
        return cls(
            hidden=number("hidden_size", "n_embd", "d_model"),
            intermediate=number("intermediate_size", "n_inner", default=4 * number("hidden_size", "n_embd", "d_model")),
            layers=number("num_hidden_layers", "n_layer"),
            heads=heads,
            kv_heads=number("num_key_value_heads", default=heads),
            vocab=number("vocab_size"),
            tied=bool(config.get("tie_word_embeddings", False)),
        )

    @property
    def kv(self) -> int:
        return self.hidden * self.kv_heads // self.heads

    def linear_shapes(self) -> list[tuple[int, int]]:
        """(in, out) of each linear layer of one decoder layer: q, k, v, o, gate, up, down."""
        h, kv, i = self.hidden, self.kv, self.intermediate
        return [(h, h), (h, kv), (h, kv), (h, h), (h, i), (h, i), (i, h)]

    @property
    def linear_params(self) -> int:
        return self.layers * sum(a * b for a, b in self.linear_shapes())

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden * (1 if self.tied else 2)

    @property
    def params(self) -> int:
        return self.linear_params + self.embedding_params + self.hidden * (2 * self.layers + 1)

    def lora_params(self, rank: int) -> int:
        """Parameters of rank-`rank` adapters on every linear layer."""
        return self.layers * sum(rank * (a + b) for a, b in self.linear_shapes())


@dataclass(frozen=True)
class Estimate:
    """Bytes needed, by what holds them."""

    weights: float
    loading: float  # on a CPU, the weights file's pages stay resident beside the model (safetensors maps it)
    trained: float  # the trained parameters' weights (fp32 copies), gradients and Adam's two moments
    activations: float
    logits: float
    runtime: float

    @property
    def total(self) -> float:
        return self.weights + self.loading + self.trained + self.activations + self.logits + self.runtime

    def parts_gib(self) -> dict[str, float]:
        """Each part and the total, in GiB."""
        parts = {"weights": self.weights, "loading": self.loading, "trained": self.trained,
                 "activations": self.activations,
                 "logits": self.logits, "runtime": self.runtime, "total": self.total}  # fmt: skip
        return {k: round(v / GiB, 3) for k, v in parts.items()}


def estimate(
    shape: Shape,
    tuning: str,
    tokens: int,
    rank: int = 16,
    precision_bytes: int = 4,
    checkpointing: bool = False,
    kind: str = "cpu",
    trained_in_full: int = 0,
    from_files: bool = True,
) -> Estimate:
    """Memory to train `shape` on micro-batches of `tokens` tokens.

    `tuning` is lora, qlora or full; `precision_bytes` the frozen weights' and activations' element size (4: fp32,
    2: bf16/fp16); `trained_in_full` parameters trained besides the adapters (embeddings a tiny model trains).
    """
    b = precision_bytes
    if tuning == "full":  # every weight trained: weight, gradient, Adam's two moments (and an fp32 master copy in bf16)
        weights, trained = 0.0, shape.params * 16.0
    else:
        linear = shape.linear_params * (0.53 if tuning == "qlora" else b)  # 4-bit blocks and their scales
        weights = linear + (shape.params - shape.linear_params) * b
        trained = (shape.lora_params(rank) + trained_in_full) * 16.0  # fp32 adapters: weight, grad, 2 moments
    per_layer = (6 * shape.hidden + 2 * shape.kv + 4 * shape.intermediate) * b
    if checkpointing:
        activations = tokens * (shape.layers * shape.hidden * b + per_layer)
    else:
        activations = tokens * shape.layers * per_layer
    logits = tokens * shape.vocab * 8  # fp32 logits and their gradient
    loading = shape.params * 4.0 if from_files and kind == "cpu" else 0.0  # the file holds fp32 (or is read as it)
    return Estimate(weights, loading, trained, activations, logits, RUNTIME_BYTES[kind])


def largest_micro_batch(fits_in: float, make: object, step: int = 256, limit: int = 1 << 20) -> int:
    """The most tokens per micro-batch (a multiple of `step`) whose estimate fits in `fits_in` bytes (0: none)."""
    assert callable(make)
    best, low, high = 0, 1, limit // step
    while low <= high:
        middle = (low + high) // 2
        if make(middle * step).total <= fits_in:
            best, low = middle * step, middle + 1
        else:
            high = middle - 1
    return best


# Devices by name: memory in GiB, and whether they compute in bf16 (else fp16 on GPUs, fp32 on CPUs).
DEVICES: dict[str, tuple[str, float, bool]] = {
    "h200-141gb": ("gpu", 141, True),
    "h100-80gb": ("gpu", 80, True),
    "a100-80gb": ("gpu", 80, True),
    "a100-40gb": ("gpu", 40, True),
    "l40s-48gb": ("gpu", 48, True),
    "a10g-24gb": ("gpu", 24, True),
    "l4-24gb": ("gpu", 24, True),
    "rtx4090-24gb": ("gpu", 24, True),
    "t4-16gb": ("gpu", 16, False),
}


def device(name: str) -> tuple[str, float, bool]:
    """(kind, GiB, bf16) of a named device: one of DEVICES, or cpu-NNgb / gpu-NNgb."""
    found = DEVICES.get(name.lower())
    if found:
        return found
    generic = re.fullmatch(r"(cpu|gpu)-(\d+(?:\.\d+)?)gb", name.lower())
    if generic:
        return generic.group(1), float(generic.group(2)), generic.group(1) == "gpu"
    raise ValueError(f"unknown device {name!r}: use one of {', '.join(DEVICES)}, or cpu-NNgb / gpu-NNgb")


def this_machine() -> str:
    """This machine's memory as a device name (cpu-NNgb), read from /proc/meminfo where there is one."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"cpu-{int(line.split()[1]) // (1024 * 1024)}gb"
    except OSError:
        pass
    return "cpu-16gb"


def config_of(model: str) -> dict[str, Any] | None:
    """A model's config.json: a folder, or the Hugging Face cache (read as files: nothing is downloaded)."""
    folder = Path(model).expanduser()
    if (folder / "config.json").is_file():
        found: dict[str, Any] = json.loads((folder / "config.json").read_text())
        return found
    from os import environ

    hub = Path(environ.get("HF_HUB_CACHE") or Path(environ.get("HF_HOME", "~/.cache/huggingface")) / "hub")
    cached = sorted(hub.expanduser().glob(f"models--{model.replace('/', '--')}/snapshots/*/config.json"))
    return dict(json.loads(cached[-1].read_text())) if cached else None
