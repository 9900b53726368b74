"""Vectorised n-gram statistics over a whole batch of token lists at once (numpy).

Per-record Python loops over n-grams cost ~100 us a record; hashing every token once and doing the
n-gram work as array operations over the batch costs a few. Tokens come hashed (`tokens.py`),
n-grams are mixed from them by multiply-xor into 64 bits, with the record index mixed in so that
equal n-grams of different records never meet. Collisions at 64 bits are negligible at batch
sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_MIX = np.array(
    [
        0x9E3779B97F4A7C15,
        0xC2B2AE3D27D4EB4F,
        0x165667B19E3779F9,
        0xD6E8FEB86659FD93,
        0xFF51AFD7ED558CCD,
        0xC4CEB9FE1A85EC53,
        0xA0761D6478BD642F,
        0xE7037ED1A0B428DB,
        0x8EBC6AF09C88C6E3,
        0x589965CC75374CC3,
        0x1D8E4E27C47D124F,
    ],
    dtype=np.uint64,
)


@dataclass
class Flat:
    """A batch of token lists laid end to end."""

    ids: np.ndarray  # uint64 token hashes
    lens: np.ndarray  # int64 token lengths (characters)
    rec: np.ndarray  # int64 record index of each token
    starts: np.ndarray  # int64, len R+1: where each record's tokens start
    n_records: int

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.starts)


def windows(flat: Flat, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Start positions of every n-gram that stays inside its record, and its 64-bit key."""
    m = len(flat.ids) - n + 1
    if m <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.uint64)
    pos = np.arange(m, dtype=np.int64)
    pos = pos[pos + n <= flat.starts[flat.rec[:m] + 1]]
    h = flat.rec[pos].astype(np.uint64) * _MIX[-1]
    for k in range(n):
        h = (h ^ flat.ids[pos + k]) * _MIX[k % (len(_MIX) - 1)]
    h ^= h >> np.uint64(29)
    return pos, h


def _eligible_windows(flat: Flat, n: int, eligible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pos, keys = windows(flat, n)
    keep = eligible[flat.rec[pos]]
    return pos[keep], keys[keep]


def top_ngram_frac(flat: Flat, n: int, eligible: np.ndarray) -> np.ndarray:
    """Gopher's top n-gram share: count x characters of the most frequent n-gram / all characters.

    Ties go to the n-gram seen first, as `Counter.most_common` does. 0 where no n-gram repeats
    or the record is not eligible.
    """
    out = np.zeros(flat.n_records)
    pos, keys = _eligible_windows(flat, n, eligible)
    if not len(pos):
        return out
    _, inv, cnt = np.unique(keys, return_inverse=True, return_counts=True)
    c = cnt[inv]
    rec = flat.rec[pos]
    best = np.zeros(flat.n_records, np.int64)
    np.maximum.at(best, rec, c)
    first = c == best[rec]
    recs, idx = np.unique(rec[first], return_index=True)
    p = pos[first][idx]
    cs = np.concatenate([[0], np.cumsum(flat.lens)])
    chars = cs[p + n] - cs[p]
    total = _total_chars(flat)
    val = best[recs] * chars / total[recs]
    out[recs] = np.where(best[recs] > 1, val, 0.0)
    return out


def dup_ngram_frac(flat: Flat, n: int, eligible: np.ndarray) -> np.ndarray:
    """Gopher's duplicate n-gram share: characters of words inside a repeated n-gram / all."""
    out = np.zeros(flat.n_records)
    pos, keys = _eligible_windows(flat, n, eligible)
    if not len(pos):
        return out
    _, first = np.unique(keys, return_index=True)
    dup = np.ones(len(pos), bool)
    dup[first] = False
    starts = pos[dup]
    size = len(flat.ids) + 1
    diff = np.bincount(starts, minlength=size) - np.bincount(starts + n, minlength=size)
    covered = np.cumsum(diff)[:-1] > 0
    chars = np.bincount(flat.rec, weights=flat.lens * covered, minlength=flat.n_records)
    return np.where(eligible, chars / _total_chars(flat), 0.0)


def contained_frac(a: Flat, b: Flat, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per record: the share of a's n-grams that also stand in b's same record, and a's count."""
    pa, ka = windows(a, n)
    _, kb = windows(b, n)
    inside = isin(ka, kb)
    rec = a.rec[pa]
    total = np.bincount(rec, minlength=a.n_records)
    hit = np.bincount(rec, weights=inside, minlength=a.n_records)
    return np.divide(hit, total, out=np.zeros(a.n_records), where=total > 0), total


def isin(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`np.isin` for large hash arrays, ~3x faster: both sides sorted, then one merge-like search
    (sorted queries keep `searchsorted` in cache)."""
    out = np.zeros(len(a), bool)
    if not len(a) or not len(b):
        return out
    if len(b) <= 32:  # a few values (a word list): one comparison pass each beats sorting
        for v in np.unique(b):
            out |= a == v
        return out
    sb = np.sort(b)
    order = np.argsort(a)
    sa = a[order]
    i = np.searchsorted(sb, sa)
    i[i == len(sb)] = 0
    out[order] = sb[i] == sa
    return out


def _total_chars(flat: Flat) -> np.ndarray:
    return np.maximum(np.bincount(flat.rec, weights=flat.lens, minlength=flat.n_records), 1)
