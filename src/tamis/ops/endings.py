"""`endings`: answers that stop where this data set's answers do not end.

A cut at a sentence or line break looks finished to every per-record rule ("... on the Martian
surface." is a fine last sentence, and a fine middle one). What separates a real ending from a
break inside an answer is learnt here from the data set itself, so it needs no model download and
adapts to maths, code or role-play: every answer's real ending is a positive example, the
sentence/line breaks and word gaps inside it are negatives, and a linear model over hashed features
of the last words (the words themselves, the last sentence's opening, the last line's first token
and indent) and of the answer's shape (its length, whether it holds a call such as `search('...')`,
how many of the prompt's numbers it has not used yet: a worked maths answer uses them all, one cut
between two steps often has not; its lines against the prompt's numbers) says how much each
answer's ending looks like an ending. Answers are scored by a model that did not learn from them
(two folds), and those under a threshold are flagged `truncated`: `max_end_prob`, or where higher
the score `min_end_z` robust deviations under this data set's median (at most `z_max_prob`), since
how far cuts fall under finished answers differs by data set. Cuts the per-record checks missed are
among the answers it learns from and teach it that answers end there, so it learns `rounds` (2)
times, each round without the answers the one before scored under `relearn_below` (or the data
set's own threshold, where higher).

It assumes most answers are finished; with fewer than `min_answers` answers it says so and flags
nothing. The cost while streaming is the features of every answer's end (30-50 us an answer on
gsm8k, a third of it counting the prompt's and answer's numbers); then, for the evenly spaced
`train_answers` the model learns from, those of their `negatives` inner cut points, and a fit:
about a second and a half at 5,000 answers, whatever the data set's size.
"""

from __future__ import annotations

import math
import os
import random
import re
import zlib
from collections.abc import Iterable
from typing import Any

import numpy as np

from tamis.ops.base import CrossContext, Decisions, Operator, Param, record_text, register
from tamis.records.model import Record

DIM = 1 << 18  # hashed feature space; index DIM is padding
WIDTH = 24  # features per position at most
TAIL = 400  # characters of a position's left context the features look at
SENT = re.compile(r"[.!?][\"')\]]*\s+")
BREAK = re.compile(r"[.!?:;][\"')\]]*[ \t]+|\n+")
SPACE = re.compile(" ")
CALL = re.compile(r"[A-Za-z_]\w*\(")
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
STRIP = ".,!?;:\"'()[]{}*`"
ENDS = frozenset(".!?")  # what ends a sentence
CLOSE = "\"')]*"  # what may follow a sentence's end: quotes, brackets, emphasis
_HASHES: dict[str, int] = {}  # features repeat (words, openings): a lookup beats a crc32


def _hash(feature: str) -> int:
    h = _HASHES.get(feature)
    if h is None:
        if len(_HASHES) > 1 << 20:
            _HASHES.clear()
        h = _HASHES[feature] = zlib.crc32(feature.encode("utf-8", "surrogatepass")) & (DIM - 1)
    return h


def numbers(text: str) -> frozenset[str]:
    """The distinct numbers in `text`, written one way (`1,000` and `1000`, `2.50` and `2.5`)."""
    out = set()
    for m in NUMBER.findall(text):
        m = m.replace(",", "")
        out.add(m.rstrip("0").rstrip(".") if "." in m else m)
    return frozenset(out)


def features(text: str, asked: frozenset[str] = frozenset()) -> list[int]:
    """Hashed features of the place where `text` stops (its right end), at most WIDTH. `asked`:
    the numbers of the prompt; how many of them the answer has not used yet is a feature (a worked
    maths answer uses all its question's numbers; one cut between two steps often has not), and
    the answer's lines against the prompt's numbers (a worked answer takes about a line a number:
    a pair the linear model cannot form itself; on gsm8k rows 2,000 on, a fifth of them cut, it
    finds 0.890 of the cuts at 0.5% of finished answers flagged, against 0.870 without)."""
    s = text[-TAIL:].rstrip()
    words = s.split()
    if not words:
        return []
    low = [w.lower() for w in words[-3:]]
    f = ["1" + low[-1], "c" + s[-1], "d" + s[-2:]]
    if len(low) > 1:
        f += ["2" + low[-2] + " " + low[-1], "p" + low[-2]]
    if len(low) > 2:
        f.append("3" + " ".join(low))
    parts = SENT.split(s)
    opening = parts[-1].split()[:2]
    if opening:
        f.append("s" + opening[0].lower())
        if len(opening) > 1:
            f.append("t" + opening[0].lower() + " " + opening[1].lower())
    if len(parts) > 1:
        before = parts[-2].split()[:1]
        f.append("q" + (before[0].lower() if before else ""))
    line = s.rsplit("\n", 1)[-1]
    first = line.split()[:1]
    f.append("l" + (first[0][:8] if first else ""))
    f.append(f"i{min(4, (len(line) - len(line.lstrip())) // 2)}")
    f.append(f"n{min(3, text.count(chr(10)))}")
    f.append("e" + _line_ends(s))
    # the answer's shape: how long it is, and whether it holds a call (`search('...')`): in a data
    # set whose answers all end with a tool call, a cut before the call lacks one
    f.append(f"w{min(6, len(words) // 5)}")
    f.append("k1" if "(" in s and CALL.search(s) else "k0")  # the regex is slow: "(" first
    if asked:
        f.append(f"u{min(3, len(asked - numbers(text)))}")
        f.append(f"a{min(5, len(asked))}-{min(8, text.count(chr(10)))}")
    f += ["b" + w.lower().strip(STRIP) for w in words[-(WIDTH - len(f)) :]]
    get = _HASHES.get
    out = [get(x) for x in f[:WIDTH]]
    if None in out:
        out = [_hash(x) if h is None else h for x, h in zip(f[:WIDTH], out, strict=True)]
    return out


def _line_ends(s: str) -> str:
    """Whether the earlier lines of `s` end in a sentence's punctuation (all, some, none: "a",
    "m", "z"; "-" with no earlier line) and whether its last line does ("1", "0"): a pair, since
    an author who ends every line with a full stop but not the last one has most likely been cut,
    where one who never does has not."""
    lines = [x.rstrip().rstrip(CLOSE) for x in s.split("\n")]
    lines = [x for x in lines if x]
    if not lines:
        return "-0"
    last = "1" if lines[-1][-1] in ENDS else "0"
    if len(lines) < 2:
        return "-" + last
    ended = sum(x[-1] in ENDS for x in lines[:-1])
    return ("a" if ended == len(lines) - 1 else "m" if ended else "z") + last


def inner_positions(text: str, k: int, seed: int) -> list[int]:
    """Up to `k` places inside `text` where it could have been cut: sentence and line breaks
    first (the cuts rules cannot see), then word gaps; chosen by a seed from the text."""
    end = len(text.rstrip())
    rng = random.Random(seed)
    breaks = [m.end() for m in BREAK.finditer(text, 0, end) if m.start() > 0 and m.end() < end]
    chosen = rng.sample(breaks, min(len(breaks), k - 2))
    gaps = [m.start() for m in SPACE.finditer(text, int(end * 0.1) + 1, int(end * 0.95))]
    chosen += rng.sample(gaps, min(len(gaps), k - len(chosen)))
    return sorted(chosen)


def _pad(rows: Iterable[list[int]], n: int) -> np.ndarray:
    out = np.full((n, WIDTH), DIM, np.int32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def _answer(record: Record) -> str | None:
    """The last assistant turn's text, if the record ends with one."""
    turns = [t for t in record.turns if t.role == "assistant"]
    if not turns or not isinstance(turns[-1].content, str) or turns[-1].calls_tools:
        return None  # a tool call's text leads into the call: not an ending
    return turns[-1].content


def _asked(record: Record) -> frozenset[str]:
    """The numbers of what comes before the last assistant turn (system, user, earlier turns)."""
    last = max((i for i, t in enumerate(record.turns) if t.role == "assistant"), default=0)
    return numbers("\n".join(t.content for t in record.turns[:last] if isinstance(t.content, str)))


def fit(x: np.ndarray, y: np.ndarray, epochs: int = 4, seed: int = 0) -> np.ndarray:
    """Logistic regression over hashed binary features (rows L2-normalised), trained by AdaGrad on
    shuffled mini-batches (numpy only: a few seconds on 100k rows). Returns the weights: padding's
    0 at DIM, the bias last."""
    w = np.zeros(DIM + 2)
    acc = np.full(DIM + 2, 1e-8)
    real = x != DIM
    val = real / np.sqrt(np.maximum(real.sum(1, keepdims=True), 1))
    xb = np.concatenate([x, np.full((len(x), 1), DIM + 1, np.int32)], 1)
    vb = np.concatenate([val, np.ones((len(x), 1))], 1)
    rng = np.random.default_rng(seed)
    lr, l2, batch = 0.5, 1e-6, 256
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for a in range(0, len(order), batch):
            idx = order[a : a + batch]
            xi, vi = xb[idx], vb[idx]
            p = 1.0 / (1.0 + np.exp(-(w[xi] * vi).sum(1)))
            g = np.bincount(xi.ravel(), ((p - y[idx])[:, None] * vi).ravel(), DIM + 2)
            touched = np.unique(xi)
            gt = g[touched] / len(idx) + l2 * w[touched]
            acc[touched] += gt * gt
            w[touched] -= lr * gt / np.sqrt(acc[touched])
            w[DIM] = 0.0
    return w


def logits(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    real = x != DIM
    val = real / np.sqrt(np.maximum(real.sum(1, keepdims=True), 1))
    return (w[x] * val).sum(1) + w[DIM + 1]


def threshold(
    score: np.ndarray, alive: np.ndarray, below: float, min_z: float, z_max_prob: float
) -> float:
    """The probability under which an answer's ending counts as cut: `below`, or, where higher,
    the one `min_z` robust deviations (median and MAD of the `alive` answers' logits) under this
    data set's median, capped at `z_max_prob`. The second adapts to how well the model separates
    this data set: Toolformer's finished answers all end with a tool call and score far above
    its cuts (0.1% of them under 0.2, most cuts it misses at 0.02 under 0.1), where in gsm8k the
    two overlap and 0.02 is already 3.3 deviations down."""
    if not min_z or not alive.any():
        return below
    med = np.median(score[alive])
    mad = 1.4826 * np.median(np.abs(score[alive] - med))
    at = 1.0 / (1.0 + np.exp(-(med - min_z * mad)))
    return float(max(below, min(z_max_prob, at)))


@register
class Endings(Operator):
    name = "endings"
    description = (
        "answers cut at a sentence or line break: a model of what this data set's endings look "
        "like, learnt from its own answers against the breaks inside them"
    )
    params = {
        "max_end_prob": Param(0.02, "flag answers whose ending scores under this (0-1)"),
        "negatives": Param(5, "inner cut points learnt from per answer", compute=True),
        "train_answers": Param(5000, "answers learnt from at most (evenly spaced)"),
        "min_answers": Param(100, "fewer answers than this: too few to learn from, none flagged"),
        "min_words": Param(3, "shorter answers are neither learnt from nor flagged"),
        "min_end_z": Param(
            3.5, "also flag answers this many robust deviations under the median (0: off)"
        ),
        "z_max_prob": Param(0.1, "but not those scoring this or more"),
        "rounds": Param(2, "learn again without the answers the last round scored as cut"),
        "relearn_below": Param(0.02, "answers scoring under this are not learnt from next round"),
    }
    reasons = {"truncated": "the answer stops where this data set's answers do not end"}

    def keys(self, records: list[Record]) -> dict[str, Any]:
        """Every answer's ending features, and its text: the inner cut points are worked out
        later, only for the answers the model learns from (the workers do not know which)."""
        ends: list[list[int]] = []
        texts: list[str | None] = []
        asked: list[frozenset[str]] = []
        has = np.zeros(len(records), bool)
        whole = np.zeros(len(records), np.uint32)  # the whole record's hash: copies share it
        for i, r in enumerate(records):
            text = _answer(r)
            if text is None or len(text.split(None, self.p["min_words"])) < self.p["min_words"]:
                ends.append([])
                texts.append(None)
                asked.append(frozenset())
                continue
            has[i] = True
            nums = _asked(r)
            ends.append(features(text, nums))
            texts.append(text)
            asked.append(nums)
            whole[i] = zlib.crc32(record_text(r).encode("utf-8", "surrogatepass"))
        return {
            "end": _pad(ends, len(records)),
            "has": has,
            "text": texts,
            "asked": asked,
            "whole": whole,
        }

    def gather_keys(self, chunks: Iterable[tuple[int, Any]], n: int, work: str) -> Any:
        """Every record's ending features in a file under `work` (memory stays flat); the texts
        only of the evenly spaced answers the model may learn from."""
        stride = max(1, math.ceil(n / self.p["train_answers"]))
        path = os.path.join(work, "endings.end.npy")
        end = np.lib.format.open_memmap(path, "w+", np.int32, (max(n, 1), WIDTH))
        has = np.zeros(n, bool)
        texts: list[str | None] = []  # of the sample only
        asked: list[frozenset[str]] = []
        whole: list[np.ndarray] = []
        pos = 0
        for count, chunk in chunks:
            end[pos : pos + count] = chunk["end"]
            has[pos : pos + count] = chunk["has"]
            texts += chunk["text"][-pos % stride :: stride]
            asked += chunk["asked"][-pos % stride :: stride]
            whole.append(chunk["whole"][-pos % stride :: stride])
            pos += count
        return {
            "end": end[:n],
            "has": has,
            "texts": texts,
            "asked": asked,
            "whole": np.concatenate(whole) if whole else np.zeros(0, np.uint32),
            "stride": stride,
        }

    def _inner(self, texts: list[str], asked: list[frozenset[str]]) -> np.ndarray:
        """Features of up to `negatives` inner cut points of each text: (texts, negatives, WIDTH),
        padded."""
        k = self.p["negatives"]
        rows: list[list[int]] = []
        for text, nums in zip(texts, asked, strict=True):
            cuts = inner_positions(text, k, zlib.crc32(text.encode("utf-8", "surrogatepass")))
            rows += [features(text[:c], nums) for c in cuts] + [[]] * (k - len(cuts))
        return _pad(rows, len(rows)).reshape(len(texts), k, WIDTH)

    def decide_all(self, keys: Any, ctx: CrossContext) -> Decisions:
        end, has, texts, stride = keys["end"], keys["has"], keys["texts"], keys["stride"]
        n = len(has)
        sample = np.arange(0, n, stride)
        learn = has[sample] & np.asarray(ctx.alive[sample], bool)
        seen: set[tuple[int, str]] = set()  # each record once: a copy would teach it twice
        for j in np.flatnonzero(learn):
            key = (int(keys["whole"][j]), texts[j])
            if key in seen:
                learn[j] = False
            seen.add(key)
        none = Decisions(self.name, "truncated", np.zeros(0, np.int64))
        if learn.sum() < self.p["min_answers"]:
            ctx.notes = {"learnt_from": int(learn.sum()), "skipped": "too few answers"}
            return none
        # inner cut points only of the answers learnt from: not of those already dropped
        inner = np.full((len(sample), self.p["negatives"], WIDTH), DIM, np.int32)
        rows = np.flatnonzero(learn)
        inner[learn] = self._inner([texts[i] for i in rows], [keys["asked"][i] for i in rows])
        # a cut the per-record checks missed teaches the model that answers end there: each round
        # learns again without the answers the last one scored as cut (Toolformer 28 -> 31 of 35
        # cuts on the defects benchmark, no more untouched answers flagged)
        learnt_from = int(learn.sum())
        rounds = max(1, int(self.p["rounds"]))
        alive = has & np.asarray(ctx.alive, bool)
        z = self.p["min_end_z"], self.p["z_max_prob"]
        prob, score = np.ones(n), np.zeros(n)
        for r in range(rounds):
            if r:
                below = threshold(score[sample], alive[sample], self.p["relearn_below"], *z)
                learn = learn & ~(prob[sample] < below)
            fold = np.arange(len(sample)) % 2
            models = []
            for f in (0, 1):
                use = learn & (fold != f)
                neg = inner[use].reshape(-1, WIDTH)
                neg = neg[(neg != DIM).any(1)]
                x = np.concatenate([np.asarray(end[sample[use]]), neg])
                y = np.concatenate([np.ones(use.sum()), np.zeros(len(neg))])
                models.append(fit(x, y))
            score = np.empty(n)
            # answers outside the sample: both models of the last round, averaged (earlier rounds
            # only decide which sample answers the next one learns from)
            if stride > 1 and r == rounds - 1:
                step = 65536
                for a in range(0, n, step):
                    chunk = np.asarray(end[a : a + step])
                    score[a : a + step] = (logits(models[0], chunk) + logits(models[1], chunk)) / 2
            # an answer in the sample is scored by the model that did not learn from it
            for f in (0, 1):
                own = sample[fold == f]
                score[own] = logits(models[f], np.asarray(end[own]))
            with np.errstate(over="ignore"):  # exp overflows to inf for a sure cut: prob 0
                prob = 1.0 / (1.0 + np.exp(-score))
        below = threshold(score, alive, self.p["max_end_prob"], *z)
        flagged = np.flatnonzero(has & (prob < below))
        ctx.notes = {
            "learnt_from": learnt_from,
            "flagged": len(flagged),
            "threshold": round(below, 4),
        }
        if r:
            ctx.notes["last_round_learnt_from"] = int(learn.sum())
        return Decisions(self.name, "truncated", flagged.astype(np.int64), score=prob[flagged])
