"""Dataset statistics and training cost, with the definitions of OpenAI's cookbook data-prep notebook."""

from __future__ import annotations

import json
import multiprocessing
import statistics
import sys
from array import array
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fto.backends.tokenizers import (
    ESTIMATE_ENCODING,
    Counter,
    TiktokenCounter,
    model_counter,
    tiktoken_counter,
    tiktoken_encoding,
)
from fto.orchestrator.data.validate import Target, validate_file
from fto.schemas import Conversation, Message, PreferencePair, Record

TOKENS_PER_MESSAGE, TOKENS_PER_NAME, REPLY_PRIMING = 3, 1, 3  # the notebook's num_tokens_from_messages
PROCESS_FROM_BYTES = 16 * 2**20  # files from this size count tokens in a process of their own


def message_tokens(message: Message, counter: Counter) -> int:
    """Tokens of one message by the cookbook's rule (per-message overhead, role, content, name, calls)."""
    total = TOKENS_PER_MESSAGE + counter.count(message.role) + counter.count(message.content or "")
    if message.name:
        total += counter.count(message.name) + TOKENS_PER_NAME
    if message.tool_calls:
        total += counter.count(json.dumps([c.model_dump(exclude_none=True) for c in message.tool_calls]))
    return total


def assistant_tokens(messages: list[Message], counter: Counter) -> int:
    """Tokens of the assistant turns (what the model is trained to produce)."""
    total = 0
    for m in messages:
        if m.role == "assistant":
            total += counter.count(m.content or "")
            if m.tool_calls:
                total += counter.count(json.dumps([c.model_dump(exclude_none=True) for c in m.tool_calls]))
    return total


def measure(record: Record, counter: Counter) -> tuple[int, int]:
    """(total tokens, assistant tokens) of one example; a pair counts its prompt, both replies, and its tools."""
    return total_tokens(record, counter), assistant_tokens(_answers(record), counter)


def total_tokens(record: Record, counter: Counter) -> int:
    """Tokens of the whole example, as billed."""
    if isinstance(record, PreferencePair):
        messages = [*record.prompt, *record.chosen, *record.rejected]
    else:
        messages = record.messages
    total = sum(message_tokens(m, counter) for m in messages) + REPLY_PRIMING
    if record.tools:
        total += counter.count(json.dumps([t.model_dump(exclude_none=True) for t in record.tools]))
    return total


def _answers(record: Record) -> list[Message]:
    return [*record.chosen, *record.rejected] if isinstance(record, PreferencePair) else record.messages


class _Recorder:
    """A stand-in counter that notes which distinct text each count would be of (and counts nothing), so that
    `measure`'s rules run once per record and the counts are summed in when they come."""

    name, exact = "recorder", False

    def __init__(self) -> None:
        self.index: dict[str, int] = {}  # distinct text → its position
        self.noted: list[int] = []  # positions counted by the current rule

    def count(self, text: str) -> int:
        self.noted.append(self.index.setdefault(text, len(self.index)))
        return 0

    def plan(self, record: Record) -> tuple[int, list[int], list[int]]:
        """The record's fixed tokens (per-message overheads), and the texts its total and its answers add."""
        totals: list[int] = []
        answers: list[int] = []
        self.noted = totals
        fixed = total_tokens(record, self)
        self.noted = answers
        assistant_tokens(_answers(record), self)
        return fixed, totals, answers


def _count_in_worker(encoding: str, texts: list[str]) -> list[int]:
    """In a counting process: the tokens of each text (tiktoken holds the GIL, so threads would not overlap)."""
    found = tiktoken_encoding(encoding)
    return [len(found.encode_ordinary(text)) for text in texts]


class _Window:
    """A window of records whose distinct texts are being counted elsewhere; `result()` finishes `measure`."""

    def __init__(self, plans: list[tuple[int, list[int], list[int]]], counts: Future[list[int]]):
        self.plans, self.counts = plans, counts

    def result(self) -> list[tuple[int, int]]:
        counts = self.counts.result()
        return [
            (fixed + sum([counts[i] for i in totals]), sum([counts[i] for i in answers]))
            for fixed, totals, answers in self.plans
        ]


def measure_window(records: list[Record], counter: Counter, pool: Executor) -> _Window:
    """`measure` of each record by the same rules, with each distinct text (system prompts, roles and tool schemas
    repeat) tokenized once, on `pool` — a process beside this one for tiktoken, which holds the GIL."""
    recorder = _Recorder()
    plans = [recorder.plan(record) for record in records]
    distinct = list(recorder.index)
    if isinstance(counter, TiktokenCounter) and isinstance(pool, ProcessPoolExecutor):
        return _Window(plans, pool.submit(_count_in_worker, counter.encoding.name, distinct))
    return _Window(plans, pool.submit(lambda: [counter.count(text) for text in distinct]))


def _counting_pool(path: str | Path, counter: Counter) -> Executor:
    """A process for a large file counted with tiktoken (parsing and counting then run on two cores); a thread
    otherwise (a small file would wait longer for the process to start than for its tokens)."""
    size = Path(path).stat().st_size if Path(path).is_file() else 0
    if isinstance(counter, TiktokenCounter) and size >= PROCESS_FROM_BYTES:
        context = multiprocessing.get_context("forkserver" if sys.platform != "win32" else "spawn")
        return ProcessPoolExecutor(1, mp_context=context)
    return ThreadPoolExecutor(1, thread_name_prefix="fto-count")


def distribution(values: array) -> dict[str, float] | None:
    """min, max, mean, median, p10 and p90 of `values` (None when empty)."""
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


def histogram(values: array, bins: int = 20) -> dict[str, list[float]] | None:
    """Counts of `values` in `bins` equal-width bins: {"edges": bins + 1 edges, "counts": bins counts}."""
    if not values:
        return None
    low, high = min(values), max(values)
    bins = min(bins, int(high - low) + 1)  # token counts are whole: never a bin narrower than one token
    width = (high - low + 1) / bins
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - low) / width))] += 1
    return {"edges": [round(low + k * width, 2) for k in range(bins + 1)], "counts": counts}


def dataset_stats(
    path: str | Path,
    target: str | None = None,
    model: str | None = None,
    tokenizer: str | None = None,
    fmt: str = "auto",
    mapping: dict[str, Any] | None = None,
    epochs: int | None = None,
) -> dict[str, Any]:
    """Counts, token distributions and the training cost of a file, as provider `target` would see them.

    Without a target, tokens are a labelled cl100k estimate and there is no limit or price.
    """
    provider = Target.named(target) if target else None
    card = None
    if provider is not None:
        from fto.backends import registry

        model, card = provider.info.model(model)
        counter = registry.backend_class(target or "").token_counter(model, tokenizer)
    else:
        counter = model_counter(tokenizer) if tokenizer else tiktoken_counter(ESTIMATE_ENCODING, False, "the provider")
    limit = card.max_tokens_per_example if card else None
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

    # Tokens are counted beside the parsing (a process for large files), one window of records behind.
    with _counting_pool(path, counter) as pool:
        report = validate_file(
            path, target, fmt, mapping, token_limit=limit, observe=observe,
            measure_many=lambda window: measure_window(window, counter, pool),
        )  # fmt: skip
    billing = sum(min(limit, t) for t in totals) if limit else sum(totals)
    n_epochs = epochs or (provider.info.epochs.epochs_for(len(totals)) if provider else 1)
    price = card.training_usd_per_1m if card else None
    return {
        "file": str(path),
        "format": report.format,
        "target": target,
        "model": model,
        "model_known": card is not None,
        "tokenizer": counter.name,
        "tokens_exact": counter.exact,
        "examples": report.examples,
        "missing_system": missing["system"],
        "missing_user": missing["user"],
        "messages_per_example": distribution(n_messages),
        "total_tokens_per_example": distribution(totals),
        "total_tokens_histogram": histogram(totals),
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
