"""Scorers: (prediction, reference) → a score in [0, 1]."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable

Scorer = Callable[[str, str], float]

_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")


def normalize(text: str) -> str:
    """Lower case, no punctuation, single spaces (as SQuAD's scorer does)."""
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def exact_match(prediction: str, reference: str) -> float:
    return float(prediction.strip() == reference.strip())


def token_f1(prediction: str, reference: str) -> float:
    """Harmonic mean of token precision and recall after normalising; two empty strings match."""
    pred, ref = normalize(prediction).split(), normalize(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


SCORERS: dict[str, Scorer] = {"exact_match": exact_match, "token_f1": token_f1}
