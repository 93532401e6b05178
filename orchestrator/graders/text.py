"""The text graders: `string_check` operations and `text_similarity` metrics (rapidfuzz, sacrebleu, rouge-score:
the reference implementations OpenAI's graders name)."""

from __future__ import annotations

from functools import cache
from typing import Any

from fto.orchestrator.errors import ConfigError


def string_check(operation: str, given: str, reference: str) -> float:
    """1.0 when the operation holds: eq, ne, like (contains), ilike (contains, ignoring case)."""
    if operation == "eq":
        return float(given == reference)
    if operation == "ne":
        return float(given != reference)
    if operation == "like":
        return float(reference in given)
    return float(reference.lower() in given.lower())


def _needs(module: str) -> Any:
    try:
        return __import__(module)
    except ImportError:
        raise ConfigError(
            f"this text_similarity metric needs {module}: pip install 'fto[graders]'", field="graders"
        ) from None


@cache
def _rouge(metric: str) -> Any:
    scorer = _needs("rouge_score.rouge_scorer").rouge_scorer
    name = "rougeL" if metric == "rouge_l" else f"rouge{metric[-1]}"
    return name, scorer.RougeScorer([name], use_stemmer=False)


def similarity(metric: str, given: str, reference: str) -> float:
    """How close `given` is to `reference`, in [0, 1]."""
    if metric == "fuzzy_match":
        from rapidfuzz import fuzz

        return float(fuzz.ratio(given, reference)) / 100
    if metric == "bleu":
        sacrebleu = _needs("sacrebleu")
        return float(sacrebleu.sentence_bleu(given, [reference]).score) / 100
    if metric.startswith("rouge_"):
        name, scorer = _rouge(metric)
        return float(scorer.score(reference, given)[name].fmeasure)
    raise ConfigError(f"unknown text_similarity metric {metric!r}", field="graders")
