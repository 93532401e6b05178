"""What the eval's calls cost: tokens as providers counted them, latency, and dollars at each backend's prices."""

from __future__ import annotations

import inspect
from statistics import fmean, median
from typing import Any

from fto.backends import registry
from fto.orchestrator.errors import FtoError
from fto.schemas import Completion
from fto.schemas.provider import Price


def prices(backend_type: str, model: str, base_model: str | None = None) -> Price | None:
    """USD per 1M (input, output) tokens for `model` (tuned from `base_model`, when known) on a backend, or None
    when the backend does not know."""
    price_of = registry.backend_class(backend_type).inference_price
    if len(inspect.signature(price_of).parameters) < 2:  # plugins written before base_model existed
        return price_of(model)
    return price_of(model, base_model)


def call_cost(backend_type: str, model: str, completion: Completion, base_model: str | None = None) -> float | None:
    """Dollars one call cost, or None when its tokens or the model's price are unknown."""
    price = prices(backend_type, model, base_model)
    if price is None or completion.input_tokens is None or completion.output_tokens is None:
        return None
    return (completion.input_tokens * price[0] + completion.output_tokens * price[1]) / 1e6


def usage_summary(
    completions: list[Completion], backend_type: str, model: str, base_model: str | None = None
) -> dict[str, Any]:
    """Totals for one model's calls; unknown counts stay None rather than pretend to be zero."""
    latencies = [c.seconds for c in completions if c.seconds is not None]
    costs = [call_cost(backend_type, model, c, base_model) for c in completions]

    def total(values: list[Any]) -> Any:
        return None if not values or any(v is None for v in values) else sum(values)

    return {
        "calls": len(completions),
        "input_tokens": total([c.input_tokens for c in completions]),
        "output_tokens": total([c.output_tokens for c in completions]),
        "cost_usd": None if total(costs) is None else round(total(costs), 6),
        "latency_mean_s": round(fmean(latencies), 4) if latencies else None,
        "latency_p50_s": round(median(latencies), 4) if latencies else None,
    }


def training_cost(backend_type: str, base_model: str | None, trained_tokens: int | None) -> float | None:
    """Dollars a job's training cost: its trained tokens at the provider's price for the base model, or None when
    either is unknown (the local backend has no price: its time is shown instead)."""
    if not trained_tokens or not base_model:
        return None
    try:
        _, card = registry.backend_class(backend_type).describe().model(base_model)
    except (FtoError, ImportError, OSError, ValueError):  # a plugin without a provider table
        return None
    price = card.training_usd_per_1m if card else None
    return None if price is None else round(trained_tokens * price / 1e6, 6)
