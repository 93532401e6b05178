"""Near-duplicate text by MinHash LSH (datasketch): word 3-shingles (character 5-grams for short texts), hashed in
batches, indexed once. The index is asked a little below the threshold (so few true pairs are missed) and each
candidate is confirmed by the exact Jaccard similarity of the two shingle sets, so results do not depend on luck."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

NUM_PERM = 128
RECALL_MARGIN = 0.85  # the index is asked for pairs from this share of the threshold; exact Jaccard decides
WORD = re.compile(r"\w+")


def shingles(text: str) -> set[bytes]:
    """Word 3-grams of `text`, lower-cased; character 5-grams when it has fewer than 3 words."""
    words = WORD.findall(text.lower())
    if len(words) >= 3:
        return {" ".join(words[i : i + 3]).encode() for i in range(len(words) - 2)}
    joined = " ".join(words)
    return {joined[i : i + 5].encode() for i in range(max(1, len(joined) - 4))} if joined else set()


class Signature:
    """A text's shingles and their MinHash."""

    def __init__(self, grams: set[bytes], minhash: Any):
        self.grams = grams
        self.minhash = minhash


def signatures(texts: Sequence[str]) -> list[Signature]:
    """One signature per text (an empty text gets an empty one, which matches nothing)."""
    from datasketch import MinHash

    out = []
    for text in texts:
        minhash = MinHash(num_perm=NUM_PERM)
        grams = shingles(text)
        if grams:
            minhash.update_batch(list(grams))
        out.append(Signature(grams, minhash))
    return out


def jaccard(first: set[bytes], second: set[bytes]) -> float:
    """The share of shingles two texts have in common: |first ∩ second| / |first ∪ second|."""
    return len(first & second) / len(first | second) if first or second else 0.0


class Index:
    """An LSH index over signatures, answering which indexed texts are at least `threshold` similar."""

    def __init__(self, threshold: float):
        from datasketch import MinHashLSH

        self.threshold = threshold
        self.lsh = MinHashLSH(threshold=threshold * RECALL_MARGIN, num_perm=NUM_PERM)
        self.grams: dict[int, set[bytes]] = {}

    def add(self, key: int, signature: Signature) -> None:
        """Index `signature` under `key` (empty signatures are not indexed)."""
        if signature.grams:
            self.lsh.insert(key, signature.minhash)
            self.grams[key] = signature.grams

    def similar(self, signature: Signature) -> list[int]:
        """Keys of indexed texts at least `threshold` alike (exact Jaccard of their shingles)."""
        if not signature.grams:
            return []
        found = self.lsh.query(signature.minhash)
        return sorted(k for k in found if jaccard(self.grams[k], signature.grams) >= self.threshold)
