"""`fto data stats --for NAME` for every hosted provider: token counts (labelled estimates where the provider's
tokenizer is not available offline), the provider's limits, and a price from the backend's own table."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ANIMALS, run_fto


@pytest.mark.parametrize(
    ("backend", "model", "usd_per_1m", "limit"),
    [
        ("together", "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference", 0.48, 131072),
        ("fireworks", "accounts/fireworks/models/llama-v3p1-8b-instruct", 0.5, 131072),
        ("vertex", "gemini-2.5-flash", 5.0, 131072),
        ("bedrock", "anthropic.claude-3-haiku-20240307-v1:0:200k", 8.0, 32000),
        ("bedrock", "amazon.nova-micro-v1:0:128k", 1.0, 32000),
    ],
)
def test_each_provider_counts_limits_and_prices(backend, model, usd_per_1m, limit):
    result = run_fto("data", "stats", str(ANIMALS), "--for", backend, "--model", model, "--epochs", "2", "--json")
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["model"] == model and stats["model_known"]
    assert stats["tokens_exact"] is False  # labelled: their tokenizers are not available offline
    assert stats["token_limit"] == limit and stats["over_limit"] == 0
    assert stats["usd_per_1m_training_tokens"] == usd_per_1m
    assert stats["estimated_cost_usd"] == pytest.approx(stats["billing_tokens"] * 2 * usd_per_1m / 1e6, abs=0.01)
    shown = run_fto("data", "stats", str(ANIMALS), "--for", backend, "--model", model)
    assert "(counts are estimates)" in shown.stdout and "estimated cost: $" in shown.stdout
