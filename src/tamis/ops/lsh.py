"""MinHash signatures and LSH banding, vectorised over batches (numpy).

Signatures use one-permutation hashing with optimal densification (Li, Owen & Zhang 2012;
Shrivastava 2017): each shingle is hashed once and falls into one of `num_perm` bins, a bin keeps
its smallest value, and empty bins borrow from a bin chosen by a fixed hash sequence. Two
signatures agree in a bin with probability equal to the Jaccard similarity of the shingle sets, as
with classic MinHash, at 1/num_perm of the hashing cost.

Bands and rows come from the target threshold by minimising the weighted areas under the false
positive and false negative curves, as text-dedup's `optimal_param` does.
"""

from __future__ import annotations

from functools import cache, lru_cache

import numpy as np

from tamis.ops.shingles import Shingles, mix64

EMPTY = np.uint32(0xFFFFFFFF)


def signatures(sh: Shingles, num_perm: int = 128, seed: int = 0) -> np.ndarray:
    """(records, num_perm) uint32 MinHash signatures; a record without shingles is all EMPTY."""
    if num_perm & (num_perm - 1):
        raise ValueError(f"num_perm must be a power of two, not {num_perm}")
    bits = num_perm.bit_length() - 1
    x = mix64(sh.hashes ^ np.uint64(seed * 0x9E3779B97F4A7C15 % 2**64))
    bins = (x >> np.uint64(64 - bits)).astype(np.int64) if bits else np.zeros(len(x), np.int64)
    vals = x & np.uint64(0xFFFFFFFF)
    sig = np.full((sh.n_records, num_perm), EMPTY, np.uint32)
    if len(x):
        np.minimum.at(sig.reshape(-1), sh.rec * num_perm + bins, vals.astype(np.uint32))
    return densify(sig)


def densify(sig: np.ndarray) -> np.ndarray:
    """Fill empty bins from other bins along one fixed pseudo-random sequence per bin."""
    n, p = sig.shape
    has = (sig != EMPTY).any(axis=1)
    rows, cols = np.nonzero((sig == EMPTY) & has[:, None])
    attempt = 0
    while len(rows):
        attempt += 1
        src = _probe(p, attempt)[cols]
        got = sig[rows, src]
        ok = got != EMPTY
        # a borrowed value is salted by the attempt number, as in optimal densification
        sig[rows[ok], cols[ok]] = got[ok] ^ np.uint32((attempt * 0x9E3779B1) & 0xFFFFFFFF)
        rows, cols = rows[~ok], cols[~ok]
    return sig


@cache
def _probe(p: int, attempt: int) -> np.ndarray:
    h = mix64(np.arange(p, dtype=np.uint64) * np.uint64(1_000_003) + np.uint64(attempt))
    return (h % np.uint64(p)).astype(np.int64)


@lru_cache(maxsize=256)
def optimal_param(
    threshold: float, num_perm: int, fp_weight: float = 0.5, fn_weight: float = 0.5
) -> tuple[int, int]:
    """(bands, rows) minimising the weighted false-positive and false-negative areas."""
    s_lo = np.linspace(0.0, threshold, 201)[:, None]
    s_hi = np.linspace(threshold, 1.0, 201)[:, None]
    b, r = np.array([(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)]).T
    fp = np.trapezoid(1 - (1 - s_lo**r) ** b, s_lo[:, 0], axis=0)
    fn = np.trapezoid((1 - s_hi**r) ** b, s_hi[:, 0], axis=0)
    best = int(np.argmin(fp * fp_weight + fn * fn_weight))  # the first minimum, as a loop finds
    return int(b[best]), int(r[best])


def compact(sig: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(uint16 signature, has-shingles mask): b-bit minwise hashing with b=16 (Li & Koenig 2010)
    halves memory; two different values agree by chance 1 time in 65,536, a negligible bias."""
    has = sig[:, 0] != EMPTY if len(sig) else np.zeros(0, bool)
    return (sig & np.uint32(0xFFFF)).astype(np.uint16), has


def row_hashes(sig: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each whole signature (equal signatures, equal hashes)."""
    h = np.zeros(len(sig), np.uint64)
    for c in range(sig.shape[1]):
        h = mix64(h ^ sig[:, c].astype(np.uint64))
    return h


def candidate_pairs(
    sig: np.ndarray,
    bands: int,
    rows: int,
    all_pairs_upto: int = 32,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """(k, 2) int64 pairs (i, j), i < j, sharing a band bucket.

    In buckets of up to `all_pairs_upto` records every pair is a candidate; a larger bucket pairs
    each member with its first record only (enough to connect it, as text-dedup does, without
    quadratic cost).
    """
    n = sig.shape[0]
    if valid is None:
        valid = sig[:, 0] != EMPTY if sig.dtype == np.uint32 else np.ones(n, bool)
    idx = np.flatnonzero(valid)
    out = []
    for b in range(bands):
        h = np.zeros(n, np.uint64)
        for c in range(b * rows, (b + 1) * rows):
            h = mix64(h ^ sig[:, c].astype(np.uint64))
        hv = h[idx]
        order = np.argsort(hv, kind="stable")
        hs, members = hv[order], idx[order]
        new = np.concatenate([[True], hs[1:] != hs[:-1]])
        run = np.cumsum(new) - 1
        starts = np.flatnonzero(new)
        size = np.diff(np.concatenate([starts, [len(hs)]]))[run]
        big = size > all_pairs_upto
        head = members[starts[run]]
        pair = big & (head != members)
        if pair.any():
            out.append(np.stack([head[pair], members[pair]], axis=1))
        small_max = int(size[~big].max()) if (~big).any() else 1
        for d in range(1, small_max):
            same = (run[d:] == run[:-d]) & ~big[d:]
            if same.any():
                out.append(np.stack([members[:-d][same], members[d:][same]], axis=1))
    if not out:
        return np.zeros((0, 2), np.int64)
    pairs = np.concatenate(out)
    pairs.sort(axis=1)
    return np.unique(pairs, axis=0)


def estimated_jaccard(sig: np.ndarray, pairs: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Share of agreeing bins for each pair: an unbiased estimate of their Jaccard similarity."""
    out = np.empty(len(pairs))
    for s in range(0, len(pairs), chunk):
        p = pairs[s : s + chunk]
        out[s : s + chunk] = (sig[p[:, 0]] == sig[p[:, 1]]).mean(axis=1)
    return out
