"""Stable, vectorised shingle hashing for a whole batch of texts (numpy).

Near-duplicate detection compares records hashed in different worker processes, so hashes must be
the same in every process (Python's `hash()` of a string is not). Here every text of a batch is
laid end to end as UTF-8 bytes, and a polynomial prefix hash over the bytes gives the hash of any
byte span in O(1) array operations: a word is a span, a character n-gram is a span, and a word
n-gram mixes its words' hashes. No Python loop runs per token or per shingle.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

WORD = re.compile(r"\w+")
_BASE = 0x100000001B3  # FNV prime: odd, so it has an inverse modulo 2**64
_INV_BASE = pow(_BASE, -1, 2**64)
_M = [np.uint64(x) for x in (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB)]


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads every input bit over every output bit."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M[1]
    x = x ^ (x >> np.uint64(27))
    x = x * _M[2]
    return x ^ (x >> np.uint64(31))


def normalise(text: str, lowercase: bool = True, punctuation: bool = True) -> str:
    """The text a shingle sees: lowercased, words only (punctuation dropped), single spaces."""
    if lowercase:
        text = text.lower()
    return " ".join(WORD.findall(text)) if punctuation else " ".join(text.split())


@dataclass
class Shingles:
    """Shingle hashes of a batch: `hashes[i]` belongs to record `rec[i]`."""

    hashes: np.ndarray  # uint64
    rec: np.ndarray  # int64
    n_records: int


_POW_CACHE: dict[int, np.ndarray] = {}


def _powers(base: int, n: int) -> np.ndarray:
    """base**0 .. base**(n-1) modulo 2**64, cached and grown by doubling (batches reuse them)."""
    have = _POW_CACHE.get(base)
    if have is None or len(have) < n:
        size = max(n, 2 * len(have) if have is not None else 1 << 16)
        out = np.empty(size, np.uint64)
        out[0] = 1
        out[1:] = np.cumprod(np.full(size - 1, base, np.uint64))
        _POW_CACHE[base] = have = out
    return have[:n]


# byte classes for splitting words without a regex: ASCII letters, digits and "_" and every
# non-ASCII byte (UTF-8 letters of other scripts) are word bytes; with `punctuation` off, only
# whitespace separates words.
_WORD_BYTES = np.zeros(256, bool)
for _c in b"0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ":
    _WORD_BYTES[_c] = True
_WORD_BYTES[128:] = True
_NON_SPACE = np.ones(256, bool)
for _c in b" \t\n\r\x0b\x0c\x00":
    _NON_SPACE[_c] = False


def span_hasher(arr: np.ndarray) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A function giving the 64-bit hash of byte spans [s, e) of `arr`, many at once, the same in
    every process. Prefix hash: pre[i] = sum_{j<i} b[j] * B^j (mod 2^64), so a span's hash is
    (pre[e] - pre[s]) * B^-s, mixed with its length."""
    size = len(arr)
    pw = _powers(_BASE, size)
    pre = np.zeros(size + 1, np.uint64)
    np.cumsum(arr.astype(np.uint64) * pw, out=pre[1:])
    ipw = _powers(_INV_BASE, size + 1)

    def span(s: np.ndarray, e: np.ndarray) -> np.ndarray:
        return mix64((pre[e] - pre[s]) * ipw[s] + (e - s).astype(np.uint64))

    return span


def shingle(
    texts: list[str],
    kind: str = "word",
    n: int = 3,
    lowercase: bool = True,
    punctuation: bool = True,
) -> Shingles:
    """Hash every word n-gram (`kind="word"`) or character n-gram (`"char"`) of the texts.

    Normalisation: lowercase, and punctuation ignored (words are runs of letters, digits and "_";
    non-ASCII characters count as letters), each by option. Character n-grams run over the words
    joined by single spaces. Texts shorter than one n-gram give one shingle: the whole text, so
    that short texts still match their copies. Empty texts give none.
    """
    if kind not in ("word", "char"):
        raise ValueError(f"shingle kind must be 'word' or 'char', not {kind!r}")
    texts = _prepared(texts, lowercase)
    if kind == "word":
        words = _Words(texts, punctuation)
        pos, h = words.ngrams(n)
        return _with_short(h, words.rec[pos], words.rec, words.hashes, len(texts))
    texts = [normalise(t, False, punctuation) for t in texts]
    data = "\x00".join(texts).encode("utf-8", "surrogatepass") + b"\x00"
    arr = np.frombuffer(data, np.uint8)
    size = len(arr)
    span = span_hasher(arr)
    ends_rec = np.flatnonzero(arr == 0)  # where each record ends
    starts_rec = np.concatenate([[0], ends_rec[:-1] + 1])
    r = len(texts)
    pos = np.arange(size - n + 1 if size >= n else 0, dtype=np.int64)
    rec_of = np.searchsorted(ends_rec, pos, side="left")
    ok = (pos + n) <= ends_rec[np.minimum(rec_of, r - 1)]
    pos, rec_of = pos[ok], rec_of[ok]
    hashes = span(pos, pos + n)
    # records too short for one n-gram: all their characters are one shingle
    have = np.bincount(rec_of, minlength=r) > 0
    short = np.flatnonzero(~have & (ends_rec > starts_rec))
    if len(short):
        hashes = np.concatenate([hashes, span(starts_rec[short], ends_rec[short])])
        rec_of = np.concatenate([rec_of, short])
    return Shingles(hashes, rec_of.astype(np.int64), r)


def shingle_with_tails(
    texts: list[str],
    tails: list[str],
    n: int = 3,
    lowercase: bool = True,
    punctuation: bool = True,
) -> tuple[Shingles, Shingles]:
    """`shingle(texts, "word", n, ...)` and `shingle(tails, "word", n, ...)` at once, where a tail
    is mostly the end of its text after a line break (a record's answer after its prompt).

    Such a tail's word n-grams are its text's n-grams whose words all stand in it, and its words
    are its text's last words, so its text's words are split and hashed once for both (a word's
    hash depends on its bytes only). A tail that does not end its text (several answers, a tool
    call after the answer) is shingled on its own. The same shingles as the two calls, in
    another order (signatures and shingle sets do not depend on it).
    """
    texts, tails = _prepared(texts, lowercase), _prepared(tails, lowercase)
    r = len(texts)
    words = _Words(texts, punctuation)
    pos, h = words.ngrams(n)
    whole = _with_short(h, words.rec[pos], words.rec, words.hashes, r)
    # where each tail begins in the text bytes, for the tails that end their text
    found = np.zeros(r, bool)
    begin = np.zeros(r, np.int64)
    rest: list[int] = []
    for i, (t, a) in enumerate(zip(texts, tails, strict=True)):
        if a and t.endswith(a) and (len(a) == len(t) or t[-len(a) - 1] == "\n"):
            size = len(a) if a.isascii() else len(a.encode("utf-8", "surrogatepass"))
            found[i], begin[i] = True, words.ends_rec[i] - size
        elif a:
            rest.append(i)
    in_tail = found[words.rec] & (words.start >= begin[words.rec])
    keep = in_tail[pos]  # an n-gram's first word in the tail: all its words are
    rec_of = words.rec[pos][keep]
    tail = _with_short(h[keep], rec_of, words.rec[in_tail], words.hashes[in_tail], r)
    if rest:
        more = shingle([tails[i] for i in rest], "word", n, False, punctuation)
        back = np.asarray(rest, np.int64)
        tail = Shingles(
            np.concatenate([tail.hashes, more.hashes]),
            np.concatenate([tail.rec, back[more.rec]]),
            r,
        )
    return whole, tail


def _prepared(texts: list[str], lowercase: bool) -> list[str]:
    texts = [t.replace("\x00", " ") for t in texts]  # NUL ends a text in the joined bytes
    return [t.lower() for t in texts] if lowercase else texts


class _Words:
    """The words of texts laid end to end as UTF-8 bytes (NUL after each): where each starts, its
    text, its hash."""

    def __init__(self, texts: list[str], punctuation: bool):
        data = "\x00".join(texts).encode("utf-8", "surrogatepass") + b"\x00"
        arr = np.frombuffer(data, np.uint8)
        self.ends_rec = np.flatnonzero(arr == 0)  # where each text ends
        sep = ~(_WORD_BYTES if punctuation else _NON_SPACE)[arr]
        prev_sep = np.concatenate([[True], sep[:-1]])
        next_sep = np.concatenate([sep[1:], [True]])
        self.start = np.flatnonzero(prev_sep & ~sep)
        end = np.flatnonzero(next_sep & ~sep) + 1
        self.rec = np.searchsorted(self.ends_rec, self.start, side="left")
        self.hashes = span_hasher(arr)(self.start, end)

    def ngrams(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(first word, hash) of every run of n words within one text."""
        m = len(self.hashes) - n + 1
        if m <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.uint64)
        pos = np.arange(m, dtype=np.int64)
        pos = pos[self.rec[pos] == self.rec[pos + n - 1]]
        h = np.zeros(len(pos), np.uint64)
        for k in range(n):
            h = mix64(h ^ self.hashes[pos + k]) + np.uint64(k)
        return pos, h


def _with_short(
    hashes: np.ndarray, rec_of: np.ndarray, w_rec: np.ndarray, wh: np.ndarray, r: int
) -> Shingles:
    """Word n-gram shingles plus, for each text with words but too few for an n-gram, one
    shingle of all its words (each mixed with its rank); `w_rec`, `wh`: the words in order."""
    have = np.bincount(rec_of, minlength=r) > 0
    short = np.flatnonzero(~have & (np.bincount(w_rec, minlength=r) > 0))
    if len(short):
        pick = np.isin(w_rec, short)
        w_idx = np.flatnonzero(pick)
        rank = w_idx - np.searchsorted(w_rec, w_rec[w_idx], side="left")
        whole = np.zeros(r, np.uint64)
        np.add.at(whole, w_rec[w_idx], mix64(wh[w_idx] ^ rank.astype(np.uint64)))
        hashes = np.concatenate([hashes, mix64(whole[short])])
        rec_of = np.concatenate([rec_of, short])
    return Shingles(hashes, rec_of.astype(np.int64), r)
