"""Continuous batching for `fto serve`: one decode loop, running batches ("lanes") per model.

A request joins its lane's running batch at the next step (its prompt is prefilled, its key/value cache padded on
the left to the batch's length and appended) and leaves it the step it ends, so sixteen streaming clients share one
forward pass per token instead of queueing behind each other. Each sequence samples with its own settings and seed.

Small requests share one lane per model; a request of many sequences (50 prompts × n=16) gets a lane of its own.
On a CPU a step costs in proportion to its rows, so lanes take turns by the compute time each has used (the lane
that used least goes next), and a new lane starts with a little credit: a 4-token chat request is answered in a few
cheap steps while a large request's batch waits, instead of riding along in its 32 long rows.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import DynamicCache

from fto.backends.local.shared_lock import SharedLock

MAX_BATCH = 32
OWN_LANE_SEQUENCES = 8  # a request of at least this many sequences runs in a lane of its own
NEW_LANE_CREDIT = 0.05  # seconds of compute a new lane may use before it shares turns with the older ones


@dataclass(frozen=True)
class Sampling:
    """How one sequence is generated."""

    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    logprobs: int | None = None  # None: none; k: the chosen token's log-probability and the k likeliest
    trim: bool = False  # a chat reply: no leading or trailing whitespace (as the eval harness reads replies)
    end_token_logprob: bool = False  # the end token among the log-probabilities (text completions show it)
    allowed: Callable[[list[int]], Sequence[int] | None] | None = None  # tokens allowed next (JSON mode)


@dataclass(frozen=True)
class TokenInfo:
    """A generated token with its log-probability and the likeliest alternatives."""

    token: str
    logprob: float | None  # None: the first token of an echoed prompt (nothing precedes it)
    top: tuple[tuple[str, float], ...] = ()


@dataclass
class Piece:
    """New output of one sequence: text safe to show (a possible stop string is held back) and its tokens."""

    text: str
    tokens: list[TokenInfo]
    finish_reason: str | None = None  # "stop" or "length" on the last piece
    error: str | None = None  # the sequence could not be generated (the last piece)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    token_ids: tuple[int, ...] = ()  # the last piece: every generated token, the end token included (RFT trains on it)


@dataclass
class _Sequence:
    model: str
    prompt: list[int]
    sampling: Sampling
    emit: Callable[[Piece], None]
    group: object = None  # the request it belongs to: rows are shared fairly between requests
    lane: object = None  # None: the model's shared lane; else the request's own
    generator: torch.Generator | None = None
    generated: list[int] = field(default_factory=list)
    sampled: int = 0  # tokens generated, the end-of-turn token included (usage counts it)
    pending: list[TokenInfo] = field(default_factory=list)
    shown: int = 0  # characters of the visible text already emitted
    cancelled: bool = False
    done: bool = False

    def cancel(self) -> None:
        """Leave the batch at the next step (the client went away)."""
        self.cancelled = True


@dataclass
class _Batch:
    """The running sequences of one model: a key/value cache and attention mask padded on the left."""

    rows: list[_Sequence]
    cache: DynamicCache
    mask: torch.Tensor  # [rows, cached length]
    last: torch.Tensor  # [rows]: the token each row feeds next


class Engine:
    """Generates for many sequences at once; `submit` from any thread, pieces arrive through each `emit`."""

    def __init__(self, load: Callable[[str], tuple[Any, Any]], lock: SharedLock, device: torch.device):
        self._load, self._lock, self.device = load, lock, device
        self._waiting: deque[_Sequence] = deque()
        self._batches: dict[tuple[str, object], _Batch] = {}  # (model, lane) → its running batch
        self._used: dict[tuple[str, object], float] = {}  # compute seconds each lane has had
        self._wake = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="fto-engine", daemon=True)
        self._thread.start()

    def submit(
        self,
        model: str,
        prompt: list[int],
        sampling: Sampling,
        emit: Callable[[Piece], None],
        group: object = None,
        sequences: int = 1,
    ) -> Callable[[], None]:
        """Queue a sequence of request `group` (which has `sequences` in all); returns the function that cancels it."""
        return self.submit_many(model, [(prompt, sampling, emit)], group, sequences)[0]

    def submit_many(
        self,
        model: str,
        requests: Sequence[tuple[list[int], Sampling, Callable[[Piece], None]]],
        group: object = None,
        sequences: int = 0,
    ) -> list[Callable[[], None]]:
        """Queue (prompt, sampling, emit) sequences of one request at once, so they start in the same batches
        (RFT's rollouts: the same batches on every run, hence the same answers for the same seeds)."""
        lane = group if max(sequences, len(requests)) >= OWN_LANE_SEQUENCES else None
        queued = []
        for prompt, sampling, emit in requests:
            sequence = _Sequence(model, list(prompt), sampling, emit, group, lane)
            if sampling.temperature > 0:
                sequence.generator = torch.Generator(self.device)
                if sampling.seed is not None:
                    sequence.generator.manual_seed(sampling.seed % 2**63)
                else:
                    sequence.generator.seed()
            queued.append(sequence)
        with self._wake:
            self._waiting.extend(queued)
            self._wake.notify()
        return [sequence.cancel for sequence in queued]

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._waiting and not self._batches:
                    self._wake.wait()
                arrived = list(self._waiting)
                self._waiting.clear()
            # The lock guards the tokenizers (a fast tokenizer fails when two threads use it) and model loading;
            # forward passes run without it, so a request is checked and tokenised while a batch computes.
            self._lock.hand_over()
            try:
                self._admit(arrived)
            except Exception as exc:
                _fail([s for s in arrived if not s.done], exc)
            if self._batches:
                lane = min(self._batches, key=lambda key: self._used.get(key, 0.0))  # its turn: used least
                started = time.perf_counter()
                try:
                    self._step(lane)
                except Exception as exc:  # a broken model fails its own requests, never the loop
                    _fail(self._batches.pop(lane).rows, exc)
                self._spent(lane, started)

    def _spent(self, lane: tuple[str, object], started: float) -> None:
        """Charge a lane its compute; a lane that ended is forgotten."""
        if lane in self._batches:
            self._used[lane] = self._used.get(lane, 0.0) + time.perf_counter() - started
        else:
            self._used.pop(lane, None)

    def _admit(self, arrived: list[_Sequence]) -> None:
        late: list[_Sequence] = []
        for lane in dict.fromkeys((s.model, s.lane) for s in arrived):
            batch = self._batches.get(lane)
            running = [row.group for row in batch.rows] if batch else []
            candidates = [s for s in arrived if (s.model, s.lane) == lane and not s.cancelled]
            joining, waiting = _fair_share(candidates, running)
            late += waiting
            if joining:
                if lane not in self._batches:  # a new lane takes turns from the least used, with some credit
                    self._used[lane] = min(self._used.values(), default=0.0) - NEW_LANE_CREDIT
                started = time.perf_counter()
                self._prefill(lane, joining)
                self._spent(lane, started)
        if late:  # no room this step: first in line for the next
            with self._wake:
                self._waiting.extendleft(reversed(late))

    def _prefill(self, lane: tuple[str, object], joining: list[_Sequence]) -> None:
        try:
            net, tokenizer = self._load(lane[0])
            width = max(len(s.prompt) for s in joining)
            ids = torch.full((len(joining), width), _pad_id(tokenizer), dtype=torch.long)
            mask = torch.zeros((len(joining), width), dtype=torch.long)
            for row, sequence in enumerate(joining):
                ids[row, width - len(sequence.prompt) :] = torch.tensor(sequence.prompt)
                mask[row, width - len(sequence.prompt) :] = 1
            ids, mask = ids.to(self.device), mask.to(self.device)
            with torch.no_grad():
                out = net(
                    input_ids=ids,
                    attention_mask=mask,
                    position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                    cache=DynamicCache(),
                    use_cache=True,
                )
        except Exception as exc:  # a broken model or prompt fails its own requests, never the loop
            _fail(joining, exc)
            return
        fresh = _Batch(joining, out.past_key_values, mask, torch.zeros(len(joining), dtype=torch.long))
        self._batches[lane] = _merge(self._batches.get(lane), fresh)
        rows = len(self._batches[lane].rows)
        with self._lock:
            self._sample(lane, net, tokenizer, out.logits[:, -1, :], rows=range(rows - len(joining), rows))

    def _step(self, lane: tuple[str, object]) -> None:
        batch = self._batches[lane]
        net, tokenizer = self._load(lane[0])
        mask = torch.cat([batch.mask, torch.ones((len(batch.rows), 1), dtype=torch.long, device=self.device)], dim=1)
        with torch.no_grad():
            out = net(
                input_ids=batch.last.to(self.device).unsqueeze(1),
                attention_mask=mask,
                position_ids=batch.mask.sum(-1, keepdim=True),
                cache=batch.cache,
                use_cache=True,
            )
        batch.mask, batch.cache = mask, out.past_key_values
        with self._lock:
            self._sample(lane, net, tokenizer, out.logits[:, -1, :], rows=range(len(batch.rows)))

    def _sample(
        self, lane: tuple[str, object], net: Any, tokenizer: Any, logits: torch.Tensor, rows: Sequence[int]
    ) -> None:
        """Pick the next token of each row in `rows` (`logits` has one line per row, in order), emit what became
        visible, and drop the rows that ended."""
        batch = self._batches[lane]
        logits = logits.float()
        logp = (
            torch.log_softmax(logits, dim=-1)
            if any(batch.rows[r].sampling.logprobs is not None for r in rows)
            else None
        )
        ends = end_ids(net, tokenizer)
        for line, r in enumerate(rows):
            sequence = batch.rows[r]
            if sequence.cancelled:
                sequence.done = True
                continue
            token = _choose(logits[line], sequence)
            batch.last[r] = token
            sequence.sampled += 1
            if sequence.sampling.logprobs is not None and logp is not None:
                sequence.pending.append(_token_info(tokenizer, logp[line], token, sequence.sampling))
            if token in ends:
                if not sequence.sampling.end_token_logprob:
                    sequence.pending = sequence.pending[:-1]  # a chat reply's end token is not part of it
                self._finish(sequence, tokenizer, "stop", end_token=token)
                continue
            sequence.generated.append(token)
            self._show(sequence, tokenizer)
        keep = [r for r, s in enumerate(batch.rows) if not s.done]
        if not keep:
            del self._batches[lane]
        elif len(keep) < len(batch.rows):
            self._batches[lane] = _select(batch, keep)

    def _show(self, sequence: _Sequence, tokenizer: Any) -> None:
        text = _visible(tokenizer, sequence)
        stops = [text.find(stop) for stop in sequence.sampling.stop if stop and stop in text]
        if stops:
            self._finish(sequence, tokenizer, "stop", text[: min(stops)])
            return
        if len(sequence.generated) >= sequence.sampling.max_new_tokens:
            self._finish(sequence, tokenizer, "length")
            return
        safe = len(text) - _held_back(text, sequence.sampling)
        if safe > sequence.shown:
            sequence.emit(Piece(text[sequence.shown : safe], sequence.pending))
            sequence.shown, sequence.pending = safe, []

    def _finish(
        self, sequence: _Sequence, tokenizer: Any, reason: str, text: str | None = None, end_token: int | None = None
    ) -> None:
        text = _visible(tokenizer, sequence) if text is None else text
        if sequence.sampling.trim:
            text = text.rstrip()
        sequence.emit(
            Piece(
                text[sequence.shown :],
                sequence.pending,
                finish_reason=reason,
                prompt_tokens=len(sequence.prompt),
                completion_tokens=sequence.sampled,
                token_ids=(*sequence.generated, *([] if end_token is None else [end_token])),
            )
        )
        sequence.done = True


def _fair_share(candidates: list[_Sequence], running: list[object]) -> tuple[list[_Sequence], list[_Sequence]]:
    """(joining, waiting): the free rows of a batch dealt round-robin between requests, those with the fewest rows
    running first; the rest wait, in their order."""
    held = {group: running.count(group) for group in set(running)}
    rank: dict[int, tuple[int, int]] = {}
    turn: dict[object, int] = {}
    for position, sequence in enumerate(candidates):
        turn[sequence.group] = turn.get(sequence.group, held.get(sequence.group, 0)) + 1
        rank[id(sequence)] = (turn[sequence.group], position)
    room = MAX_BATCH - len(running)
    joining: list[_Sequence] = []
    for sequence in sorted(candidates, key=lambda s: rank[id(s)]):
        if len(joining) < room:
            joining.append(sequence)
    chosen = {id(s) for s in joining}
    return joining, [s for s in candidates if id(s) not in chosen]


def _visible(tokenizer: Any, sequence: _Sequence) -> str:
    text: str = tokenizer.decode(sequence.generated, skip_special_tokens=True)
    return text.lstrip() if sequence.sampling.trim else text


def _held_back(text: str, sampling: Sampling) -> int:
    """Characters at the end that may yet change: the start of a stop string, half a character, trailing space."""
    held = 0
    for stop in sampling.stop:
        for size in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:size]):
                held = max(held, size)
                break
    if text.endswith("\ufffd"):  # a character whose bytes span tokens, not all generated yet
        held = max(held, len(text) - len(text.rstrip("\ufffd")))
    if sampling.trim:
        held = max(held, len(text) - len(text.rstrip()))
    return held


def _choose(logits: torch.Tensor, sequence: _Sequence) -> int:
    sampling = sequence.sampling
    if sampling.allowed is not None:
        allowed = sampling.allowed(sequence.prompt + sequence.generated)
        if allowed is not None:
            masked = torch.full_like(logits, float("-inf"))
            index = torch.tensor(list(allowed), dtype=torch.long, device=logits.device)
            masked[index] = logits[index]
            logits = masked
    if sampling.temperature <= 0 or sequence.generator is None:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / sampling.temperature, dim=-1)
    if sampling.top_p < 1:
        ordered, order = torch.sort(probs, descending=True)
        outside = ordered.cumsum(-1) - ordered > sampling.top_p  # keep the smallest set reaching top_p
        probs = probs.clone()
        probs[order[outside]] = 0
    return int(torch.multinomial(probs, 1, generator=sequence.generator))


def _token_info(tokenizer: Any, logp: torch.Tensor, token: int, sampling: Sampling) -> TokenInfo:
    top: tuple[tuple[str, float], ...] = ()
    if sampling.logprobs:
        values, ids = torch.topk(logp, sampling.logprobs)
        top = tuple((tokenizer.decode([int(i)]), float(v)) for v, i in zip(values, ids, strict=True))
    return TokenInfo(tokenizer.decode([token]), float(logp[token]), top)


def _fail(sequences: list[_Sequence], exc: Exception) -> None:
    for sequence in sequences:
        sequence.done = True
        sequence.emit(Piece("", [], error=f"{type(exc).__name__}: {exc}"))


def end_ids(net: Any, tokenizer: Any) -> set[int]:
    """The tokens that end a reply: the tokenizer's end token and the model's generation config's."""
    configured = getattr(getattr(net, "generation_config", None), "eos_token_id", None)
    ids = set(configured if isinstance(configured, list) else [configured])
    return {int(i) for i in ids | {tokenizer.eos_token_id} if i is not None}


def _pad_id(tokenizer: Any) -> int:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return int(pad or 0)


def _merge(running: _Batch | None, fresh: _Batch) -> _Batch:
    """One batch of both: the shorter cache padded on the left (masked out) to the longer one's length."""
    if running is None:
        return fresh
    width = max(running.mask.shape[1], fresh.mask.shape[1])
    layers = []
    for (old_keys, old_values), (new_keys, new_values) in zip(_kv(running.cache), _kv(fresh.cache), strict=True):
        keys = torch.cat([_pad_left(old_keys, width), _pad_left(new_keys, width)])
        values = torch.cat([_pad_left(old_values, width), _pad_left(new_values, width)])
        layers.append((keys, values))
    mask = torch.cat([_pad_left(running.mask, width), _pad_left(fresh.mask, width)])
    return _Batch(running.rows + fresh.rows, DynamicCache(layers), mask, torch.cat([running.last, fresh.last]))


def _select(batch: _Batch, keep: list[int]) -> _Batch:
    """The rows in `keep`, with the columns that are padding in every one of them cut away."""
    index = torch.tensor(keep, device=batch.mask.device)
    mask = batch.mask[index]
    start = int((mask.sum(0) > 0).nonzero()[0])
    layers = [(keys[index][..., start:, :], values[index][..., start:, :]) for keys, values in _kv(batch.cache)]
    return _Batch([batch.rows[k] for k in keep], DynamicCache(layers), mask[:, start:], batch.last[index.cpu()])


def _kv(cache: DynamicCache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each layer's keys and values ([rows, heads, length, dim])."""
    return [(layer.keys, layer.values) for layer in cache.layers]  # type: ignore[union-attr,misc]


def _pad_left(tensor: torch.Tensor, width: int) -> torch.Tensor:
    """`tensor` widened to `width` along its sequence axis (the last for a mask, the second last for keys/values)."""
    axis = -1 if tensor.dim() == 2 else -2
    missing = width - tensor.shape[axis]
    if missing == 0:
        return tensor
    shape = list(tensor.shape)
    shape[axis] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=axis)
