"""The `nebius` backend: Nebius Token Factory, an OpenAI-compatible fine-tuning host for open models (LoRA or full).

Nebius speaks OpenAI's fine-tuning API (`/v1/files`, `/v1/fine_tuning/jobs` with events and checkpoints, chat), so
the openai backend's code does the work; this module holds Nebius's endpoint, key variable and the hyperparameters
it adds to OpenAI's (an absolute learning rate, LoRA rank/alpha/dropout or full training, packing, context length).
Its models, limits and prices are in provider.json beside it. Another OpenAI-compatible host is the same few lines:
see docs/nebius.md.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from fto.backends.base import BackendOptions
from fto.backends.openai import OpenAIBackend, OpenAIOptions
from fto.orchestrator.errors import UnsupportedError
from fto.schemas import JobSpec


class NebiusOptions(OpenAIOptions):
    """The `nebius` section of a job file: base model, endpoint, key variable, LoRA or full training."""

    model: str = Field(default="meta-llama/Meta-Llama-3.1-8B-Instruct", description="base model to fine-tune")
    base_url: str | None = Field(default="https://api.tokenfactory.nebius.com/v1/", description="Nebius's API root")
    api_key_env: str = Field(default="NEBIUS_API_KEY", description="environment variable holding the key")
    lora: bool = Field(default=True, description="train a LoRA adapter (false: every weight, where the model allows)")
    packing: bool = Field(default=True, description="pack short examples into full-length sequences")
    weight_decay: float = Field(default=0.0, ge=0.0, description="AdamW weight decay")
    max_grad_norm: float = Field(default=1.0, gt=0.0, description="gradient clipping")


class NebiusBackend(OpenAIBackend):
    """Fine-tunes open models on Nebius Token Factory through the openai SDK."""

    Options: ClassVar[type[BackendOptions]] = NebiusOptions
    options: NebiusOptions
    methods: ClassVar[frozenset[str]] = frozenset({"sft"})

    @classmethod
    def notice(cls, options: BackendOptions | None = None) -> str | None:
        return None

    def goes_to_openai(self) -> bool:
        return False

    def ignored(self, spec: JobSpec) -> list[str]:
        hp = spec.hyperparameters
        return ["hyperparameters.learning_rate_multiplier is OpenAI's; Nebius takes learning_rate"] * (
            hp.learning_rate_multiplier != "auto"
        )

    def method(self, spec: JobSpec) -> dict[str, Any]:
        """Supervised, with Nebius's hyperparameters (its defaults where the job file says auto)."""
        hp, options = spec.hyperparameters, self.options
        _, card = self.describe().model(options.model)
        if not options.lora and card and card.note.startswith("LoRA only"):
            raise UnsupportedError(
                f"{options.model} is offered with LoRA only on Nebius (lora: true)", backend=self.name
            )
        params: dict[str, Any] = {
            "lora": options.lora,
            "packing": options.packing,
            "warmup_ratio": hp.warmup_ratio,
            "weight_decay": options.weight_decay,
            "max_grad_norm": options.max_grad_norm,
        }
        epochs = self.describe().epochs
        if hp.epochs != "auto":
            if not epochs.min <= hp.epochs <= epochs.max:
                raise UnsupportedError(
                    f"hyperparameters.epochs = {hp.epochs} is outside Nebius's range {epochs.min}–{epochs.max}",
                    backend=self.name,
                )
            params["n_epochs"] = hp.epochs
        if hp.batch_size != "auto":
            params["batch_size"] = hp.batch_size
        if hp.learning_rate is not None:
            params["learning_rate"] = hp.learning_rate
        if hp.max_seq_length is not None:
            params["context_length"] = hp.max_seq_length
        if options.lora:
            params |= {"lora_r": hp.lora.r, "lora_alpha": hp.lora.alpha, "lora_dropout": hp.lora.dropout}
        return {"type": "supervised", "supervised": {"hyperparameters": params}}
