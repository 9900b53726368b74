"""MinHash signatures and LSH banding, vectorised over batches (numpy).

Signatures use one-permutation hashing with optimal densification (Li, Owen & Zhang 2012;
Shrivastava 2017): each shingle is hashed once and falls into one of `num_perm` bins, a bin keeps
its smallest value, and empty bins borrow from a bin chosen by a fixed hash sequence. Two
signatures agree in a bin with probability equal to the Jaccard similarity of the shingle sets, as
with classic MinHash, at 1/num_perm of the hashing cost.

Signatures are held in memory (a numpy array) or column by column in a file (`ColumnFile`, what
`tamis clean` uses): from the file every step here reads a block of columns at a time, so memory
holds a few numbers a record instead of every signature.

Bands and rows come from the target threshold by minimising the weighted areas under the false
positive and false negative curves, as text-dedup's `optimal_param` does.
"""

from __future__ import annotations

import os
from functools import cache, lru_cache
from typing import Any

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
    """Fill empty bins from other bins along one fixed pseudo-random sequence per bin.

    Works on flat indices into the signature matrix (one index array instead of a row and a
    column array): 1.7x faster than the 2-D form, the same values."""
    sig = np.ascontiguousarray(sig)  # so that `flat` is a view, written through
    n, p = sig.shape
    flat = sig.reshape(-1)
    empty = (flat == EMPTY).reshape(n, p)
    empty[empty.all(axis=1)] = False  # a record without shingles stays all EMPTY
    idx = np.flatnonzero(empty)
    attempt = 0
    while len(idx):
        attempt += 1
        cols = idx % p
        got = flat[idx - cols + _probe(p, attempt)[cols]]
        ok = got != EMPTY
        # a borrowed value is salted by the attempt number, as in optimal densification
        flat[idx[ok]] = got[ok] ^ np.uint32((attempt * 0x9E3779B1) & 0xFFFFFFFF)
        idx = idx[~ok]
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


def row_hashes(sig: Any, subset: np.ndarray | None = None) -> np.ndarray:
    """A 64-bit hash of each whole signature (equal signatures, equal hashes), of `subset` rows
    when given."""
    n, width = sig.shape
    h = np.zeros(n if subset is None else len(subset), np.uint64)
    for c0, c1 in _blocks(sig):
        blk = columns(sig, c0, c1)
        if subset is not None:
            blk = blk[subset]
        for c in range(c1 - c0):
            h = mix64(h ^ blk[:, c].astype(np.uint64))
    return h


def candidate_pairs(
    sig: Any,
    bands: int,
    rows: int,
    all_pairs_upto: int = 32,
    valid: np.ndarray | None = None,
    subset: np.ndarray | None = None,
) -> np.ndarray:
    """(k, 2) int64 pairs (i, j), i < j, sharing a band bucket; with `subset`, of the subset's
    rows, numbered by their place in it.

    In buckets of up to `all_pairs_upto` records every pair is a candidate; a larger bucket pairs
    each member with its first record only (enough to connect it, as text-dedup does, without
    quadratic cost).
    """
    n = sig.shape[0] if subset is None else len(subset)
    if valid is None:
        valid = columns(sig, 0, 1)[:, 0] != EMPTY if sig.dtype == np.uint32 else np.ones(n, bool)
        if subset is not None and sig.dtype == np.uint32:
            valid = valid[subset]
    idx = np.flatnonzero(valid)
    if len(idx) < 2:  # no pair (and no records with words: every text empty or symbols only)
        return np.zeros((0, 2), np.int64)
    out = []
    for b in range(bands):
        blk = columns(sig, b * rows, (b + 1) * rows)
        if subset is not None:
            blk = blk[subset]
        h = np.zeros(n, np.uint64)
        for c in range(rows):
            h = mix64(h ^ blk[:, c].astype(np.uint64))
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


def estimated_jaccard(sig: Any, pairs: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Share of agreeing bins for each pair: an unbiased estimate of their Jaccard similarity."""
    agree = np.zeros(len(pairs), np.int64)
    for c0, c1 in _blocks(sig):
        blk = columns(sig, c0, c1)
        for s in range(0, len(pairs), chunk):
            p = pairs[s : s + chunk]
            agree[s : s + chunk] += (blk[p[:, 0]] == blk[p[:, 1]]).sum(axis=1)
    return agree / sig.shape[1]


def columns(sig: Any, c0: int, c1: int) -> np.ndarray:
    """Columns c0..c1-1 of every signature, as an (n, c1 - c0) array."""
    return sig.columns(c0, c1) if isinstance(sig, ColumnFile) else sig[:, c0:c1]


def _blocks(sig: Any) -> list[tuple[int, int]]:
    """Column ranges to read at a time: all of an in-memory array, 16 columns of a file."""
    width = sig.shape[1]
    step = ColumnFile.BLOCK if isinstance(sig, ColumnFile) else max(width, 1)
    return [(c, min(c + step, width)) for c in range(0, width, step)]


class ColumnFile:
    """Signatures of `n` records stored column by column in a file, written a batch at a time.

    What the decision reads is a few columns of every record at a time (an LSH band, a block of
    bins to compare), so memory holds one block (2 bytes x n x 16 at most) instead of every
    signature (256 bytes a record at 128 bins: 192 MB for 750,000 records)."""

    BLOCK = 16  # columns a reader takes at a time
    FLUSH = 65536  # rows buffered before they are written out column by column

    def __init__(self, path: str, n: int, width: int, dtype: Any = np.uint16):
        self.path, self.shape, self.dtype = path, (n, width), np.dtype(dtype)
        self._fh = open(path, "w+b")  # noqa: SIM115 (closed by finish)
        self._fh.truncate(n * width * self.dtype.itemsize)
        self._pos = 0
        self._buf: list[np.ndarray] = []
        self._buffered = 0

    def __len__(self) -> int:
        return self.shape[0]

    def append(self, rows: np.ndarray) -> None:
        """The next rows, in order."""
        self._buf.append(np.asarray(rows, self.dtype))
        self._buffered += len(rows)
        if self._buffered >= self.FLUSH:
            self._flush()

    def finish(self) -> ColumnFile:
        """Write what is buffered; every row must have come."""
        self._flush()
        self._fh.close()
        if self._pos != self.shape[0]:
            raise ValueError(f"{self.path}: {self._pos} rows written, {self.shape[0]} expected")
        return self

    def _flush(self) -> None:
        if not self._buf:
            return
        block = np.concatenate(self._buf)
        self._buf, self._buffered = [], 0
        n, size = self.shape[0], self.dtype.itemsize
        if self._pos + len(block) > n:  # would spill into the next column
            raise ValueError(f"{self.path}: more than the {n} rows expected")
        fd = self._fh.fileno()
        for c in range(self.shape[1]):
            os.pwrite(fd, np.ascontiguousarray(block[:, c]), (c * n + self._pos) * size)
        self._pos += len(block)

    def columns(self, c0: int, c1: int) -> np.ndarray:
        n, size = self.shape[0], self.dtype.itemsize
        flat = np.fromfile(self.path, self.dtype, count=n * (c1 - c0), offset=c0 * n * size)
        return flat.reshape(c1 - c0, n).T
