"""Dataset statistics and training cost, with the definitions of OpenAI's cookbook data-prep notebook."""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import sys
import threading
from array import array
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.context import BaseContext
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
from fto.orchestrator.data.read import resolve_format
from fto.orchestrator.data.source import Span, split_lines
from fto.orchestrator.data.validate import Report, Target, merged, validate_file
from fto.orchestrator.errors import ConfigError, DataError
from fto.schemas import Conversation, Message, PreferencePair, Record
from fto.schemas.provider import ModelCard

TOKENS_PER_MESSAGE, TOKENS_PER_NAME, REPLY_PRIMING = 3, 1, 3  # the notebook's num_tokens_from_messages
PROCESS_FROM_BYTES = 16 * 2**20  # files from this size count tokens in a process of their own
SPLIT_FROM_BYTES = 2**20  # plain JSONL from this size is read in parts, one per core (FTO_DATA_PROCESSES caps it)


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


def measure_window(records: list[Record], counter: Counter, pool: Executor | None) -> _Window:
    """`measure` of each record by the same rules, with each distinct text (system prompts, roles and tool schemas
    repeat) tokenized once, on `pool` — a process beside this one for tiktoken, which holds the GIL — or now."""
    recorder = _Recorder()
    plans = [recorder.plan(record) for record in records]
    distinct = list(recorder.index)
    if pool is None:
        counted: Future[list[int]] = Future()
        counted.set_result([counter.count(text) for text in distinct])
        return _Window(plans, counted)
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


@dataclass
class _Tally:
    """What a pass over a file, or a span of it, observed of each record, in file order."""

    messages: array = field(default_factory=lambda: array("l"))
    totals: array = field(default_factory=lambda: array("l"))
    answers: array = field(default_factory=lambda: array("l"))
    missing: dict[str, int] = field(default_factory=lambda: {"system": 0, "user": 0})

    def observe(self, record: Record, total: int, assistant: int) -> None:
        """One record's message count, tokens, and which of system and user turns it lacks."""
        messages = record.messages if isinstance(record, Conversation) else [*record.prompt, *record.chosen]
        self.messages.append(len(messages))
        self.totals.append(total)
        self.answers.append(assistant)
        for role in self.missing:
            if not any(m.role == role for m in messages):
                self.missing[role] += 1

    def extend(self, later: _Tally) -> None:
        """Add what the next span observed."""
        self.messages.extend(later.messages)
        self.totals.extend(later.totals)
        self.answers.extend(later.answers)
        for role, n in later.missing.items():
            self.missing[role] += n


def _counter(target: str | None, model: str | None, tokenizer: str | None) -> tuple[Counter, ModelCard | None]:
    """The token counter for `target`'s `model` (a labelled cl100k estimate without a target), and its card."""
    if target is None:
        counter = model_counter(tokenizer) if tokenizer else tiktoken_counter(ESTIMATE_ENCODING, False, "the provider")
        return counter, None
    from fto.backends import registry

    _, card = Target.named(target).info.model(model)
    return registry.backend_class(target).token_counter(model, tokenizer), card


def _tally(
    path: str | Path,
    target: str | None,
    fmt: str,
    mapping: dict[str, Any] | None,
    counter: Counter,
    limit: int | None,
    pool: Executor | None,
    span: Span | None = None,
) -> tuple[Report, _Tally]:
    """One pass over `path` (or its `span`): the validation report, and each record's counts."""
    tally = _Tally()
    report = validate_file(
        path, target, fmt, mapping, token_limit=limit, observe=tally.observe,
        measure_many=lambda window: measure_window(window, counter, pool), span=span,
    )  # fmt: skip
    return report, tally


def _tally_span(
    path: str | Path,
    target: str | None,
    model: str | None,
    tokenizer: str | None,
    fmt: str,
    mapping: dict[str, Any] | None,
    span: Span,
) -> tuple[Report, _Tally]:
    """`_tally` of one span in a process of its own (its counter made there: a tokenizer does not pickle)."""
    counter, card = _counter(target, model, tokenizer)
    return _tally(path, target, fmt, mapping, counter, card.max_tokens_per_example if card else None, None, span)


def _processes() -> int:
    """The processes a big file may be read by: one per core this process may run on, or FTO_DATA_PROCESSES."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    asked = os.environ.get("FTO_DATA_PROCESSES")
    if not asked:
        return cores
    if not asked.isdigit() or int(asked) < 1:
        raise ConfigError(f"{asked!r} is not a number of processes (1 or more)", field="FTO_DATA_PROCESSES")
    return int(asked)


def _split(
    path: str | Path, counter: Counter, fmt: str, mapping: dict[str, Any] | None
) -> tuple[list[Span], BaseContext] | None:
    """Spans of a plain JSONL file to read in processes of their own, one per core, and how to start them: a fork
    when this process runs one thread (a copy with the tokenizer loaded starts in milliseconds), else a fresh
    process, worth its start only for large files. None for one pass (a small file, gzip, or a model's tokenizer,
    whose own threads do not survive a fork)."""
    path = Path(path)
    if not isinstance(counter, TiktokenCounter) or not path.is_file():
        return None
    size = path.stat().st_size
    context: BaseContext
    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("fork")
    elif size >= PROCESS_FROM_BYTES:
        context = multiprocessing.get_context("forkserver" if sys.platform != "win32" else "spawn")
    else:
        return None
    parts = min(_processes(), size // SPLIT_FROM_BYTES)
    if parts < 2:
        return None
    try:
        resolve_format(path, fmt, mapping)  # a file whose format is unknown gets its one finding from one pass
    except DataError:
        return None
    spans = split_lines(path, parts)
    return (spans, context) if spans and len(spans) > 1 else None


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
    if provider is not None:
        model = provider.info.model(model)[0]
    counter, card = _counter(target, model, tokenizer)
    limit = card.max_tokens_per_example if card else None
    split = _split(path, counter, fmt, mapping)
    if split is None:  # tokens counted beside the parsing (a process for large files), a window of records behind
        with _counting_pool(path, counter) as pool:
            report, tally = _tally(path, target, fmt, mapping, counter, limit, pool)
    else:  # this process reads the first span, and one process each the others
        spans, context = split
        sys.stdout.flush(), sys.stderr.flush()  # a fork would write what is buffered again
        with ProcessPoolExecutor(len(spans) - 1, mp_context=context) as processes:
            args = (path, target, model, tokenizer, fmt, mapping)
            later = [processes.submit(_tally_span, *args, span) for span in spans[1:]]
            parts = [_tally(path, target, fmt, mapping, counter, limit, None, spans[0])]
            parts += [future.result() for future in later]
        report, tally = merged([r for r, _ in parts]), parts[0][1]
        for _, rest in parts[1:]:
            tally.extend(rest)
    totals = tally.totals
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
        "missing_system": tally.missing["system"],
        "missing_user": tally.missing["user"],
        "messages_per_example": distribution(tally.messages),
        "total_tokens_per_example": distribution(totals),
        "total_tokens_histogram": histogram(totals),
        "assistant_tokens_per_example": distribution(tally.answers),
        "token_limit": limit,
        "over_limit": sum(1 for t in totals if limit and t > limit),
        "billing_tokens": billing,
        "epochs": n_epochs,
        "charged_tokens": billing * n_epochs,
        "usd_per_1m_training_tokens": price,
        "estimated_cost_usd": round(billing * n_epochs * price / 1e6, 4) if price is not None else None,
        "provider_label": provider.info.label if provider else None,
        "hosting_usd_per_hour": card.hosting_usd_per_hour if card else None,
        "validation": {"errors": report.errors, "warnings": report.warnings},
    }
