"""Dataset statistics and training cost, with the definitions of OpenAI's cookbook data-prep notebook."""

from __future__ import annotations

import json
import statistics
from array import array
from pathlib import Path
from typing import Any

from orchestrator.data import providers
from orchestrator.data.tokens import Counter, counter_for
from orchestrator.data.validate import validate_file
from schemas import Conversation, Message, PreferencePair, Record

TOKENS_PER_MESSAGE, TOKENS_PER_NAME, REPLY_PRIMING = 3, 1, 3  # the notebook's num_tokens_from_messages


def message_tokens(m: Message, counter: Counter) -> int:
    n = TOKENS_PER_MESSAGE + counter.count(m.role) + counter.count(m.content or "")
    if m.name:
        n += counter.count(m.name) + TOKENS_PER_NAME
    if m.tool_calls:
        n += counter.count(json.dumps([c.model_dump(exclude_none=True) for c in m.tool_calls]))
    return n


def assistant_tokens(messages: list[Message], counter: Counter) -> int:
    total = 0
    for m in messages:
        if m.role == "assistant":
            total += counter.count(m.content or "")
            if m.tool_calls:
                total += counter.count(json.dumps([c.model_dump(exclude_none=True) for c in m.tool_calls]))
    return total


def measure(record: Record, counter: Counter) -> tuple[int, int]:
    """(total tokens, assistant tokens) of one example; a pair counts its prompt, both replies, and its tools."""
    if isinstance(record, PreferencePair):
        messages, answers = [*record.prompt, *record.chosen, *record.rejected], [*record.chosen, *record.rejected]
    else:
        messages, answers = record.messages, record.messages
    total = sum(message_tokens(m, counter) for m in messages) + REPLY_PRIMING
    if record.tools:
        total += counter.count(json.dumps([t.model_dump(exclude_none=True) for t in record.tools]))
    return total, assistant_tokens(answers, counter)


def distribution(values: array) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    deciles = statistics.quantiles(ordered, n=10, method="inclusive") if len(ordered) > 1 else [ordered[0]] * 9
    return {
        "min": ordered[0],
        "max": ordered[-1],
        "mean": round(statistics.fmean(ordered), 2),
        "median": statistics.median(ordered),
        "p10": deciles[0],
        "p90": deciles[-1],
    }


def default_epochs(examples: int, rule: dict[str, int]) -> int:
    """How many epochs the provider picks for `epochs: auto` (OpenAI's published rule)."""
    if "target" not in rule:
        return rule.get("default", 1)
    epochs = rule["target"]
    if examples * rule["target"] < rule["min_target_examples"]:
        epochs = min(rule["max"], rule["min_target_examples"] // max(examples, 1))
    elif examples * rule["target"] > rule["max_target_examples"]:
        epochs = max(rule["min"], rule["max_target_examples"] // examples)
    return epochs


def dataset_stats(
    path: str | Path,
    target: str = "openai",
    model: str | None = None,
    tokenizer: str | None = None,
    fmt: str = "auto",
    mapping: dict[str, Any] | None = None,
    epochs: int | None = None,
) -> dict[str, Any]:
    rules = providers.provider(target)
    model, info = providers.model_info(target, model)
    counter = counter_for(target, model, info, tokenizer)
    limit = (info or {}).get("max_tokens_per_example")
    n_messages, totals, answers = array("l"), array("l"), array("l")
    missing = {"system": 0, "user": 0}

    def observe(record: Record, total: int, assistant: int) -> None:
        messages = record.messages if isinstance(record, Conversation) else [*record.prompt, *record.chosen]
        n_messages.append(len(messages))
        totals.append(total)
        answers.append(assistant)
        for role in missing:
            if not any(m.role == role for m in messages):
                missing[role] += 1

    report = validate_file(
        path, target, fmt, mapping, measure=lambda r: measure(r, counter), token_limit=limit, observe=observe
    )
    billing = sum(min(limit, t) for t in totals) if limit else sum(totals)
    n_epochs = epochs or default_epochs(len(totals), rules.get("epochs", {}))
    price = (info or {}).get("training_usd_per_1m")
    return {
        "file": str(path),
        "format": report.format,
        "target": target,
        "model": model,
        "model_known": info is not None,
        "tokenizer": counter.name,
        "tokens_exact": counter.exact,
        "examples": report.examples,
        "missing_system": missing["system"],
        "missing_user": missing["user"],
        "messages_per_example": distribution(n_messages),
        "total_tokens_per_example": distribution(totals),
        "assistant_tokens_per_example": distribution(answers),
        "token_limit": limit,
        "over_limit": sum(1 for t in totals if limit and t > limit),
        "billing_tokens": billing,
        "epochs": n_epochs,
        "charged_tokens": billing * n_epochs,
        "usd_per_1m_training_tokens": price,
        "estimated_cost_usd": round(billing * n_epochs * price / 1e6, 4) if price is not None else None,
        "validation": {"errors": report.errors, "warnings": report.warnings},
    }
