"""What a backend tells the rest of fto about its provider: data rules, limits, models and prices. Pure data.

Each backend ships its description as `provider.json` beside its code; `$FTO_HOME/providers.json` may override
entries per backend name, since limits and prices change faster than releases.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataRules(_Strict):
    """What a provider accepts in a training file; checked before anything is uploaded."""

    min_examples: int = Field(default=1, ge=0, description="fewest training examples a job may have")
    max_examples: int | None = Field(default=None, gt=0, description="most training (+ validation) examples")
    file_size_limit_bytes: int | None = Field(default=None, gt=0)
    file_size_note: str = ""
    tools: bool = Field(default=True, description="whether examples may hold tool declarations, calls and results")
    labels: bool = Field(default=True, description="whether KTO-style labels are trained on (else ignored)")
    strict: frozenset[str] = Field(
        default=frozenset(), description="finding codes that are errors for this provider (warnings elsewhere)"
    )


class EpochRule(_Strict):
    """How many epochs the provider runs for `epochs: auto`: a fixed default, or a target scaled by data size."""

    default: int = Field(default=1, gt=0)
    target: int | None = Field(default=None, gt=0, description="epochs aimed at when the data size allows")
    min_target_examples: int = 0
    max_target_examples: int | None = None
    min: int = 1
    max: int = 1

    def epochs_for(self, examples: int) -> int:
        """The provider's choice for `examples` training examples."""
        if self.target is None:
            return self.default
        if examples * self.target < self.min_target_examples:
            return min(self.max, self.min_target_examples // max(examples, 1))
        if self.max_target_examples is not None and examples * self.target > self.max_target_examples:
            return max(self.min, self.max_target_examples // examples)
        return self.target


Price = tuple[float, float]  # USD per 1M (input, output) tokens


class ModelCard(_Strict):
    """One base model as the provider offers it."""

    max_tokens_per_example: int | None = Field(default=None, gt=0)
    encoding: str | None = Field(default=None, description="tiktoken encoding that counts (or estimates) its tokens")
    training_usd_per_1m: float | None = Field(default=None, ge=0)
    inference_usd_per_1m: Price | None = None
    fine_tuned_inference_usd_per_1m: Price | None = None
    tier: Literal["small", "large"] | None = Field(
        default=None, description="size class: `fto migrate` maps a model to one of the same class elsewhere"
    )
    hosting_usd_per_hour: float | None = Field(
        default=None, ge=0, description="what a deployment serving a model fine-tuned from it costs per hour it exists"
    )
    note: str = ""


class RftRules(_Strict):
    """Reinforcement fine-tuning as the provider offers it: which graders it can run and on which models."""

    graders: frozenset[str] = Field(description="grader types it takes as the reward")
    nested: frozenset[str] = Field(default=frozenset(), description="grader types it takes inside a multi grader")
    models: tuple[str, ...] = Field(default=(), description="base models that take RFT (empty: any)")
    settings: frozenset[str] = Field(
        default=frozenset(), description="rft: settings it takes (the others are recorded as ignored)"
    )
    note: str = ""


class ProviderInfo(_Strict):
    """Everything fto's data layer, cost estimates and reports need to know about a backend's provider."""

    name: str = Field(description="the backend's registered name; `$FTO_HOME/providers.json` overrides by it")
    label: str = Field(description="how messages name the provider")
    default_model: str | None = None
    tokens_exact: bool = Field(default=False, description="whether token counts are the provider's own")
    tokenizer_note: str = ""
    training_format: str = Field(default="chat", description="the data format its training files are written in")
    data: DataRules = Field(default_factory=DataRules)
    epochs: EpochRule = Field(default_factory=EpochRule)
    models: dict[str, ModelCard] = Field(default_factory=dict)
    rft: RftRules | None = Field(default=None, description="reinforcement fine-tuning, where the provider offers it")

    def model(self, name: str | None) -> tuple[str | None, ModelCard | None]:
        """The model (default: the provider's) and its card, or None when the provider's table lacks it."""
        chosen = name or self.default_model
        return chosen, self.models.get(chosen) if chosen else None
