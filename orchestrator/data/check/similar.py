"""Near-duplicate text by MinHash LSH, built for streams of any length.

Shingles are word 3-grams (character 5-grams for texts of fewer than 3 words), hashed with numpy over thousands of
texts at once; each text gets a one-permutation MinHash of 128 slots (empty slots filled by rotation), cut into LSH
bands whose keys are all a text keeps. Pairs that share a band are candidates, found by sorting; each is confirmed by
the exact Jaccard similarity of the two shingle sets (recomputed for the candidates alone), so results do not depend
on luck. Word characters: ASCII letters, digits and underscore, and any non-ASCII character; case is folded.
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
_P = 0x100000001B3  # FNV's 64-bit prime: odd, so invertible modulo 2^64
_P_INVERSE = pow(_P, -1, 2**64)
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


@cache
def _powers(size: int) -> tuple[np.ndarray, np.ndarray]:
    """P^k and P^-k modulo 2^64 for k < size (size rounded up to a power of two, so few are kept)."""
    one = np.ones(1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        up = np.concatenate([one, np.cumprod(np.full(size - 1, _P, dtype=np.uint64))])
        down = np.concatenate([one, np.cumprod(np.full(size - 1, _P_INVERSE, dtype=np.uint64))])
    return up, down


def shingles(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Every shingle hash of `texts` and the index of the text it belongs to (not deduplicated)."""
    pieces = [text.lower().encode() for text in texts]
    data = np.frombuffer(b"\x00".join(pieces), dtype=np.uint8)
    starts_of_text = np.cumsum([0, *[len(p) + 1 for p in pieces[:-1]]]) if pieces else np.zeros(0, np.int64)
    word = _WORD_BYTE[data]
    edges = np.flatnonzero(np.diff(np.concatenate(([False], word, [False])).astype(np.int8)))
    starts, ends = edges[0::2], edges[1::2]
    size = 1 << max(1, len(data).bit_length())
    up, down = _powers(size)
    with np.errstate(over="ignore"):
        prefix = np.concatenate(([np.uint64(0)], np.cumsum((data.astype(np.uint64) + np.uint64(1)) * up[: len(data)])))
        words = (prefix[ends] - prefix[starts]) * down[starts]  # each word's hash, wherever it stands
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


def band_keys(texts: Sequence[str], threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Each text's LSH band keys ([texts, bands]) and whether it has any shingle (empty texts match nothing)."""
    count, rows = bands(threshold * RECALL_MARGIN)
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
        dense = taken + (following - position).astype(np.uint64) * _K[1]
        keys = (dense[:, : count * rows].reshape(len(texts), count, rows) * _K[2]).sum(axis=2, dtype=np.uint64)
    return keys, has


def candidate_pairs(keys: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Pairs (i, j), i < j, of usable rows sharing at least one band key ([pairs, 2], each once)."""
    rows = np.flatnonzero(usable)
    found: list[np.ndarray] = []
    for band in range(keys.shape[1]):
        column = keys[rows, band]
        order = np.argsort(column, kind="stable")
        ordered = column[order]
        cuts = np.flatnonzero(np.diff(ordered)) + 1
        for group in np.split(rows[order], cuts):
            if len(group) > 1:
                found.append(_pairs(np.sort(group)))
    if not found:
        return np.zeros((0, 2), dtype=np.int64)
    return np.unique(np.concatenate(found), axis=0)


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
