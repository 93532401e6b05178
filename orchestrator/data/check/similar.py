"""Near-duplicate text by MinHash LSH, built for streams of any length.

Shingles are word 3-grams (character 5-grams for texts of fewer than 3 words), hashed with numpy over thousands of
texts at once. Each text gets a one-permutation MinHash of 128 slots (empty slots filled by rotation), of which one
byte a slot is kept: 128 bytes a text. Pairs that share an LSH band are candidates, found by sorting; those whose
signatures agree enough are confirmed by the exact Jaccard similarity of the two shingle sets (recomputed for them
alone), so results do not depend on luck. Word characters: ASCII letters, digits, underscore and any non-ASCII
character; case is folded.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from functools import cache

import numpy as np

SLOTS = 128
RECALL_MARGIN = 0.85  # candidates are looked for from this share of the threshold; exact Jaccard decides
PAIRS_PER_MEMBER = 64  # a bucket shared by more texts pairs each with its next 64 only (bounded work)
MAX = np.uint64(2**64 - 1)
_P = 0x100000001B3  # FNV's 64-bit prime
_K = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9], dtype=np.uint64)
_WORD_BYTE = np.zeros(256, dtype=bool)
_WORD_BYTE[[*range(48, 58), *range(97, 123), 95, *range(128, 256)]] = True
_WORDS = re.compile(rb"[0-9a-z_\x80-\xff]+")


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit moves every output bit."""
    with np.errstate(over="ignore"):
        z = values ^ (values >> np.uint64(30))
        z = z * np.uint64(0xBF58476D1CE4E5B9)
        z = z ^ (z >> np.uint64(27))
        z = z * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


_LONGEST = 256  # bytes of a word that count towards its hash (a longer one is told apart by its first 256)
with np.errstate(over="ignore"):
    _POWERS = np.cumprod(np.full(_LONGEST, _P, dtype=np.uint64))


def shingles(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Every shingle hash of `texts` and the index of the text it belongs to (not deduplicated)."""
    pieces = [text.lower().encode() for text in texts]
    data = np.frombuffer(b"\x00".join(pieces), dtype=np.uint8)
    starts_of_text = np.cumsum([0, *[len(p) + 1 for p in pieces[:-1]]]) if pieces else np.zeros(0, np.int64)
    word = _WORD_BYTE[data]
    edges = np.flatnonzero(np.diff(np.concatenate(([False], word, [False])).astype(np.int8)))
    starts, ends = edges[0::2], edges[1::2]
    letters = data[word].astype(np.uint64) + np.uint64(1)  # the bytes of the words, one after another
    lengths = ends - starts
    first = np.cumsum(lengths) - lengths  # where each word starts among them
    position = np.arange(len(letters)) - np.repeat(first, lengths)
    with np.errstate(over="ignore"):
        weighted = letters * _POWERS[np.minimum(position, _LONGEST - 1)]
        words = np.add.reduceat(weighted, first) if len(first) else np.zeros(0, np.uint64)
        owner = np.searchsorted(starts_of_text, starts, side="right") - 1
        same = owner[:-2] == owner[2:]
        grams = words[:-2] * _K[0] + words[1:-1] * _K[1] + words[2:] * _K[2]
    found, of = [grams[same]], [owner[:-2][same]]
    counts = np.bincount(owner, minlength=len(texts)) if len(owner) else np.zeros(len(texts), np.int64)
    for index in np.flatnonzero(counts < 3):  # few words: character 5-grams of the words joined
        joined = b" ".join(_WORDS.findall(pieces[index]))
        if joined:
            grams5 = {joined[i : i + 5] for i in range(max(1, len(joined) - 4))}
            found.append(np.array([_digest(g) for g in grams5], dtype=np.uint64))
            of.append(np.full(len(grams5), index, dtype=np.int64))
    return np.concatenate(found), np.concatenate(of)


def _digest(gram: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(gram, digest_size=8).digest(), "little")


def shingle_sets(texts: Sequence[str]) -> list[np.ndarray]:
    """Each text's distinct shingle hashes, sorted."""
    grams, owner = shingles(texts)
    order = np.lexsort((grams, owner))
    grams, owner = grams[order], owner[order]
    bounds = np.searchsorted(owner, np.arange(len(texts) + 1))
    return [np.unique(grams[bounds[i] : bounds[i + 1]]) for i in range(len(texts))]


def jaccard(first: np.ndarray, second: np.ndarray) -> float:
    """|first ∩ second| / |first ∪ second| of two sets of distinct shingle hashes."""
    if not len(first) and not len(second):
        return 0.0
    common = len(np.intersect1d(first, second, assume_unique=True))
    return common / (len(first) + len(second) - common)


@cache
def bands(threshold: float) -> tuple[int, int]:
    """(bands, rows per band) of the 128 slots that best separate pairs above `threshold` from those below
    (false positives and false negatives weighed alike, as datasketch chooses)."""
    s = np.linspace(0, 1, 401)
    best = (float("inf"), 1, SLOTS)
    for count in range(1, SLOTS + 1):
        rows = SLOTS // count
        hit = 1 - (1 - s**rows) ** count
        error = np.trapezoid(np.where(s < threshold, hit, 1 - hit), s)
        best = min(best, (float(error), count, rows))
    return best[1], best[2]


def signatures(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Each text's MinHash signature, the lowest byte of each of its 128 slots ([texts, 128] uint8: 128 bytes a
    text is all the check keeps of it), and whether it has any shingle (an empty text matches nothing)."""
    grams, owner = shingles(texts)
    mixed = _mix(grams)
    slot = (mixed >> np.uint64(57)).astype(np.int64)
    signature = np.full((len(texts), SLOTS), MAX, dtype=np.uint64)
    np.minimum.at(signature, (owner, slot), mixed & np.uint64(2**57 - 1))
    filled = signature != MAX
    has = filled.any(axis=1)
    # An empty slot takes the next filled one's value (cyclically), shifted by the distance: two texts then
    # agree on it only as often as their MinHashes agree, whatever their lengths.
    position = np.arange(SLOTS)
    at = np.where(filled, position, 4 * SLOTS)
    twice = np.concatenate([at, np.where(filled, position + SLOTS, 4 * SLOTS)], axis=1)
    following = np.minimum.accumulate(twice[:, ::-1], axis=1)[:, ::-1][:, :SLOTS]
    following = np.where(has[:, None], following, position)
    with np.errstate(over="ignore"):
        taken = np.take_along_axis(signature, following % SLOTS, axis=1)
        dense = _mix(taken + (following - position).astype(np.uint64) * _K[1])
    return (dense & np.uint64(255)).astype(np.uint8), has


def estimate(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The Jaccard similarity the one-byte signatures of row pairs suggest (two slots agree by chance 1 in 256)."""
    agree = (first == second).mean(axis=-1)
    return (agree - 1 / 256) / (1 - 1 / 256)


def band_keys(signature: np.ndarray, threshold: float) -> np.ndarray:
    """The LSH band keys ([rows, bands]) of signatures, for pairs from `threshold` (lowered by the margin) up."""
    count, rows = bands(threshold * RECALL_MARGIN)
    keys = np.zeros((len(signature), count), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for band in range(count):  # a column at a time: memory stays a few bytes a row
            for slot in range(band * rows, (band + 1) * rows):
                keys[:, band] = keys[:, band] * np.uint64(257) + signature[:, slot]
    return keys


def candidate_pairs(keys: np.ndarray, usable: np.ndarray, signatures: np.ndarray, floor: float) -> np.ndarray:
    """Pairs (i, j), i < j, of usable rows that share a band key and whose signatures suggest a similarity of at
    least `floor` ([pairs, 2], each once). Unlikely pairs are dropped band by band, so memory stays small."""
    rows = np.flatnonzero(usable)
    found: list[np.ndarray] = []
    for band in range(keys.shape[1]):
        column = keys[rows, band]
        order = np.argsort(column, kind="stable")
        ordered = column[order]
        shared = np.flatnonzero(ordered[1:] == ordered[:-1])  # most keys are a text's own: only shared ones count
        if not len(shared):
            continue
        starts = shared[np.concatenate(([True], np.diff(shared) > 1))]
        for start in starts:
            stop = start + 1
            while stop < len(ordered) and ordered[stop] == ordered[start]:
                stop += 1
            pairs = _pairs(np.sort(rows[order[start:stop]]))
            pairs = pairs[estimate(signatures[pairs[:, 0]], signatures[pairs[:, 1]]) >= floor]
            if len(pairs):
                found.append(pairs[:, 0] * len(keys) + pairs[:, 1])
    if not found:
        return np.zeros((0, 2), dtype=np.int64)
    codes = np.unique(np.concatenate(found))
    return np.stack([codes // len(keys), codes % len(keys)], axis=1)


def cross_pairs(keys: np.ndarray, usable: np.ndarray, others: np.ndarray, others_usable: np.ndarray) -> np.ndarray:
    """Pairs (i, k) of a usable row of `keys` and a usable row of `others` sharing a band key ([pairs, 2])."""
    mine, theirs = np.flatnonzero(usable), np.flatnonzero(others_usable)
    found: list[np.ndarray] = []
    for band in range(keys.shape[1]):
        order = np.argsort(others[theirs, band], kind="stable")
        sorted_keys = others[theirs, band][order]
        left = np.searchsorted(sorted_keys, keys[mine, band], side="left")
        right = np.searchsorted(sorted_keys, keys[mine, band], side="right")
        for row, start, stop in zip(mine[right > left], left[right > left], right[right > left], strict=True):
            matched = theirs[order[start:stop]]
            found.append(np.stack([np.full(len(matched), row), matched], axis=1))
    if not found:
        return np.zeros((0, 2), dtype=np.int64)
    return np.unique(np.concatenate(found), axis=0)


def _pairs(group: np.ndarray) -> np.ndarray:
    first, second = np.triu_indices(len(group), k=1)
    keep = second - first <= PAIRS_PER_MEMBER
    return np.stack([group[first[keep]], group[second[keep]]], axis=1)


def confirmed(pairs: Iterable[tuple[int, int]], sets: dict[int, np.ndarray], threshold: float) -> list[tuple[int, int]]:
    """The pairs whose shingle sets are at least `threshold` alike."""
    return [(i, j) for i, j in pairs if jaccard(sets[i], sets[j]) >= threshold]
