"""What the eval's calls cost: tokens as providers counted them, latency, and dollars from providers.json."""

from __future__ import annotations

from statistics import fmean, median
from typing import Any

from orchestrator.data.providers import table
from schemas import Completion


def prices(backend_type: str, model: str) -> tuple[float, float] | None:
    """USD per 1M (input, output) tokens for `model` on a backend, or None when the table does not know."""
    if backend_type == "local":
        return 0.0, 0.0  # your own hardware: no per-token bill
    models = table().get(backend_type, {}).get("models", {})
    if model in models and "inference_usd_per_1m" in models[model]:
        low, high = models[model]["inference_usd_per_1m"]
        return float(low), float(high)
    if model.startswith("ft:"):  # OpenAI names fine-tuned models ft:BASE:ORG:SUFFIX:ID
        base = model.split(":")[1]
        found = models.get(base, {}).get("fine_tuned_inference_usd_per_1m")
        if found:
            return float(found[0]), float(found[1])
    return None


def call_cost(backend_type: str, model: str, completion: Completion) -> float | None:
    price = prices(backend_type, model)
    if price is None or completion.input_tokens is None or completion.output_tokens is None:
        return None
    return (completion.input_tokens * price[0] + completion.output_tokens * price[1]) / 1e6


def usage_summary(completions: list[Completion], backend_type: str, model: str) -> dict[str, Any]:
    """Totals for one model's calls; unknown counts stay None rather than pretend to be zero."""
    latencies = [c.seconds for c in completions if c.seconds is not None]
    costs = [call_cost(backend_type, model, c) for c in completions]

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
