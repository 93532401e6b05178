"""Scorers: how well an output matches its reference, one number per example in [0, 1].

A scorer sees the output, the reference reply and the example; corpus-level metrics (macro-F1) aggregate the
examples' (prediction, reference) labels instead of averaging. Other packages add scorers through the
`fto.scorers` entry-point group, and a job file may name any `module:function`.
"""

from __future__ import annotations

import difflib
import importlib
import json
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from fto.orchestrator.errors import ConfigError
from fto.schemas import Message

ScoreFn = Callable[[str, Message, Any], float]  # output, reference message, example → score

_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def normalize(text: str) -> str:
    """Lower case, no punctuation, single spaces (as SQuAD's scorer does)."""
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def exact_match(output: str, reference: Message, example: Any = None) -> float:
    """1 when the output equals the reference, ignoring surrounding whitespace."""
    return float(output.strip() == (reference.content or "").strip())


def normalized_match(output: str, reference: Message, example: Any = None) -> float:
    """1 when output and reference are equal once lowercased, unpunctuated and whitespace-collapsed."""
    return float(normalize(output) == normalize(reference.content or ""))


def token_f1(output: str, reference: Message, example: Any = None) -> float:
    """Harmonic mean of token precision and recall after normalising; two empty strings match."""
    pred, ref = normalize(output).split(), normalize(reference.content or "").split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def rouge_l(output: str, reference: Message, example: Any = None) -> float:
    """ROUGE-L F-measure: the longest common subsequence of normalised tokens."""
    pred, ref = normalize(output).split(), normalize(reference.content or "").split()
    if not pred or not ref:
        return float(pred == ref)
    previous = [0] * (len(ref) + 1)
    for p in pred:
        current = [0]
        for j, r in enumerate(ref, start=1):
            current.append(previous[j - 1] + 1 if p == r else max(previous[j], current[-1]))
        previous = current
    lcs = previous[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(pred), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def final_number(text: str) -> float | None:
    """The answer a math solution ends on: after GSM8K's '#### ', else the last number in the text."""
    tail = text.split("####")[-1] if "####" in text else text
    found = _NUMBER.findall(tail)
    if not found:
        return None
    try:
        return float(found[-1 if "####" not in text else 0].replace(",", ""))
    except ValueError:
        return None


def numeric_match(output: str, reference: Message, example: Any = None) -> float:
    """1 when the final numbers agree (GSM8K-style answers, `#### 42`)."""
    got, want = final_number(output), final_number(reference.content or "")
    return float(got is not None and want is not None and abs(got - want) < 1e-6)


def json_valid(output: str, reference: Message, example: Any = None) -> float:
    """1 when the output parses as JSON."""
    try:
        json.loads(output)
    except (json.JSONDecodeError, ValueError):
        return 0.0
    return 1.0


def json_match(output: str, reference: Message, example: Any = None) -> float:
    """The output parses to the same JSON value as the reference (key order and spacing aside)."""
    try:
        return float(json.loads(output) == json.loads(reference.content or ""))
    except (json.JSONDecodeError, ValueError):
        return 0.0


def tool_call_match(output: str, reference: Message, example: Any = None) -> float:
    """1 when the output calls the reference's tool with the same arguments, 0.5 for the right tool only.

    The output is the call as JSON ({"name", "arguments"}), as fto's backends return tool calls.
    """
    if not reference.tool_calls:
        return float(not output.strip().startswith("{"))
    want = reference.tool_calls[0]
    try:
        got = json.loads(output)
    except (json.JSONDecodeError, ValueError):
        return 0.0
    if isinstance(got, list):
        got = got[0] if got else {}
    if not isinstance(got, dict) or got.get("name") != want.name:
        return 0.0
    args = got.get("arguments")
    args = json.loads(args) if isinstance(args, str) and args.strip().startswith("{") else args
    return 1.0 if args == json.loads(want.arguments or "{}") else 0.5


def macro_f1(labels: Sequence[tuple[str, str]]) -> float:
    """Classification macro-F1 over (predicted, reference) labels: every class counts alike."""
    classes = {ref for _, ref in labels} | {pred for pred, _ in labels}
    scores = []
    for c in {ref for _, ref in labels}:
        tp = sum(1 for p, r in labels if p == c and r == c)
        fp = sum(1 for p, r in labels if p == c and r != c)
        fn = sum(1 for p, r in labels if p != c and r == c)
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores) if scores and classes else 0.0


@dataclass(frozen=True)
class Scorer:
    """A named way to score an output against its reference (per example, optionally corpus-level)."""

    name: str
    score: ScoreFn
    aggregate: Callable[[Sequence[tuple[str, str]]], float] | None = None  # corpus-level, from labels
    lower_is_better: bool = False  # losses: smaller is better, and not bounded by 1


BUILT_IN: dict[str, Scorer] = {
    s.name: s
    for s in (
        Scorer("exact_match", exact_match),
        Scorer("normalized_match", normalized_match),
        Scorer("token_f1", token_f1),
        Scorer("rouge_l", rouge_l),
        Scorer("numeric_match", numeric_match),
        Scorer("accuracy", normalized_match),
        Scorer("macro_f1", normalized_match, aggregate=macro_f1),
        Scorer("json_valid", json_valid),
        Scorer("json_match", json_match),
        Scorer("tool_call_match", tool_call_match),
        Scorer("judge", lambda output, reference, example: float("nan")),  # the harness asks eval.judge instead
        # Teacher-forced on the reference, by backends that expose probabilities (local): not in [0, 1].
        Scorer("valid_loss", lambda output, reference, example: float("nan"), lower_is_better=True),
        Scorer("perplexity", lambda output, reference, example: float("nan"), lower_is_better=True),
    )
}
SCORERS = BUILT_IN  # names known without importing plugins (for validation messages)


def lower_is_better(name: str) -> bool:
    """Whether a smaller score is the better one (losses), for the scorers fto knows."""
    return name in BUILT_IN and BUILT_IN[name].lower_is_better


def known() -> list[str]:
    """Every scorer name fto knows: built in and installed through the `fto.scorers` entry points."""
    return sorted(BUILT_IN) + sorted(ep.name for ep in entry_points(group="fto.scorers"))


def get(name: str) -> Scorer:
    """A built-in scorer, one registered under `fto.scorers`, or a `module:function` path."""
    if name in BUILT_IN:
        return BUILT_IN[name]
    plugins = {ep.name: ep for ep in entry_points(group="fto.scorers")}
    if name in plugins:
        return Scorer(name, plugins[name].load())
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            return Scorer(name, getattr(importlib.import_module(module), attr))
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"cannot load scorer {name!r}: {exc}", field="eval.scorers") from None
    close = difflib.get_close_matches(name, known(), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known())}, or module:function"
    raise ConfigError(f"unknown scorer {name!r} ({hint})", field="eval.scorers")
