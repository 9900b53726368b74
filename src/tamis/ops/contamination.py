"""`contamination`: training records that overlap evaluation or test sets (`against`).

Two checks, each naming the evaluation record it hit:
- **n-gram overlap** after normalisation (lowercase, words only): any shared word 13-gram, as in
  the GPT-3 paper and lm-eval-harness's decontamination; an evaluation text shorter than 13 words
  counts as one n-gram of its whole text, so short items are caught when copied whole;
- **containment**: the share of an evaluation record's word 3-grams found in a training record
  (3-grams shared by more than 1% of the evaluation set carry no evidence and are left out):
  edited copies of short items, which share no 13-gram;
- **embedding similarity** (MiniLM cosine) at or above a threshold: lightly edited and paraphrased
  items that share no long n-gram. Off when the `embed` extra is not installed.

The evaluation sets are read once per worker (`setup`), hashed into a sorted array for
vectorised lookups, and embedded through the shared, cached embedder.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tamis.errors import RecipeError
from tamis.ops.base import Operator, Param, Reason, register
from tamis.ops.shingles import shingle
from tamis.records.model import Record


def _text(record: Record) -> str:
    return "\n".join(t.content for t in record.turns if isinstance(t.content, str) and t.content)


class EvalIndex:
    """The n-grams and embeddings of evaluation records, for lookups from training records."""

    def __init__(self, paths: list[str], ngram: int, embed: bool, small: int = 3):
        from tamis.records.io import Reader

        records = list(Reader(paths))
        self.ids = [str(r.id) for r in records]
        self.texts = [_text(r) for r in records]
        self.ngram = ngram
        sh = shingle(self.texts, "word", ngram)
        order = np.argsort(sh.hashes, kind="stable")
        self.hashes = sh.hashes[order]
        self.owner = sh.rec[order]
        # small n-grams, for containment: unique per eval record, and none shared by > 1% of them
        self.small = small
        sm = shingle(self.texts, "word", small)
        pairs = np.unique(np.stack([sm.hashes.view(np.int64), sm.rec], axis=1), axis=0)
        self.small_total = np.bincount(pairs[:, 1], minlength=len(self.texts))
        h = pairs[:, 0].view(np.uint64)
        uniq, inv, cnt = np.unique(h, return_inverse=True, return_counts=True)
        keep = cnt[inv] <= max(5, len(self.texts) // 100)
        order = np.argsort(h[keep], kind="stable")
        self.small_hashes = h[keep][order]
        self.small_owner = pairs[keep, 1][order]
        self.emb = None
        if embed and self.texts:
            from tamis.models.embeddings import embed_texts

            self.emb = embed_texts(self.texts)

    def containment(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per text: the largest share of one eval record's small n-grams found in it, and which
        eval record. Catches edited copies of short items that share no long n-gram."""
        n = len(texts)
        best = np.zeros(n)
        match = np.full(n, -1, np.int64)
        if not len(self.small_hashes) or not n:
            return best, match
        sh = shingle(texts, "word", self.small)
        qs = np.unique(np.stack([sh.hashes.view(np.int64), sh.rec], axis=1), axis=0)
        qh, qr = qs[:, 0].view(np.uint64), qs[:, 1]
        lo = np.searchsorted(self.small_hashes, qh, side="left")
        hi = np.searchsorted(self.small_hashes, qh, side="right")
        counts = hi - lo
        if not counts.sum():
            return best, match
        rec = np.repeat(qr, counts)
        starts = np.repeat(lo, counts)
        offs = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        owner = self.small_owner[starts + offs]
        pairs, shared = np.unique(np.stack([rec, owner], axis=1), axis=0, return_counts=True)
        share = shared / np.maximum(self.small_total[pairs[:, 1]], 1)
        order = np.lexsort((pairs[:, 1], -share, pairs[:, 0]))
        pairs, share = pairs[order], share[order]
        first = np.concatenate([[True], pairs[1:, 0] != pairs[:-1, 0]])
        best[pairs[first, 0]] = share[first]
        match[pairs[first, 0]] = pairs[first, 1]
        return best, match

    def ngram_hits(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per text: shared n-grams with its most-overlapping eval record, and that record."""
        n = len(texts)
        hits = np.zeros(n, np.int64)
        match = np.full(n, -1, np.int64)
        if not len(self.hashes):
            return hits, match
        sh = shingle(texts, "word", self.ngram)
        pos = np.searchsorted(self.hashes, sh.hashes)
        pos = np.minimum(pos, len(self.hashes) - 1)
        found = self.hashes[pos] == sh.hashes
        rec, owner = sh.rec[found], self.owner[pos[found]]
        if not len(rec):
            return hits, match
        pairs, counts = np.unique(np.stack([rec, owner], axis=1), axis=0, return_counts=True)
        order = np.lexsort((pairs[:, 1], -counts, pairs[:, 0]))  # most shared first, then id
        pairs, counts = pairs[order], counts[order]
        first = np.concatenate([[True], pairs[1:, 0] != pairs[:-1, 0]])
        hits[pairs[first, 0]] = counts[first]
        match[pairs[first, 0]] = pairs[first, 1]
        return hits, match


@register
class Contamination(Operator):
    name = "contamination"
    description = (
        "overlap with evaluation/test sets (`against`): shared word 13-grams (GPT-3 / lm-eval "
        "protocol) and MiniLM embedding similarity; names the evaluation record hit"
    )
    params = {
        "against": Param([], "evaluation or test files (any supported format)", compute=True),
        "ngram": Param(13, "n-gram size in words", compute=True),
        "min_ngram_hits": Param(1, "shared n-grams that make a record contaminated"),
        "min_containment": Param(
            0.6,
            "share of an eval record's word 3-grams found in a record that makes it contaminated",
        ),
        "embedding_threshold": Param(
            0.95, "cosine similarity that makes a record contaminated (null: n-grams only)"
        ),
    }
    signals = {
        "ngram_hits": "int32",
        "ngram_match": "string",
        "containment": "float32",
        "containment_match": "string",
        "embed_sim": "float32",
        "embed_match": "string",
    }
    reasons = {
        "ngram_overlap": "shares an n-gram with an evaluation record",
        "semantic_overlap": "says the same as an evaluation record",
    }

    def __init__(self, **params: Any):
        super().__init__(**params)
        if not self.p["against"]:
            raise RecipeError("contamination: give the evaluation files in `against`")
        if isinstance(self.p["against"], str):
            self.p["against"] = [self.p["against"]]
        self.index: EvalIndex | None = None

    def setup(self) -> None:
        from tamis.models import embeddings

        use_embed = self.p["embedding_threshold"] is not None and embeddings.available()
        self.index = EvalIndex(list(self.p["against"]), self.p["ngram"], use_embed)

    def compute(self, records: list[Record]) -> list[dict[str, Any]]:
        if self.index is None:
            self.setup()
        idx = self.index
        assert idx is not None
        texts = [_text(r) for r in records]
        hits, match = idx.ngram_hits(texts)
        cont, cmatch = idx.containment(texts)
        sims = np.full(len(records), np.nan)
        smatch = np.full(len(records), -1)
        if idx.emb is not None and len(idx.emb) and records:
            from tamis.models.embeddings import embed_texts

            s = embed_texts(texts) @ idx.emb.T
            smatch = s.argmax(axis=1)
            sims = s[np.arange(len(records)), smatch]
        out = []
        for i in range(len(records)):
            out.append(
                {
                    "ngram_hits": int(hits[i]),
                    "ngram_match": idx.ids[match[i]] if match[i] >= 0 else None,
                    "containment": round(float(cont[i]), 4),
                    "containment_match": idx.ids[cmatch[i]] if cmatch[i] >= 0 else None,
                    "embed_sim": None if np.isnan(sims[i]) else round(float(sims[i]), 4),
                    "embed_match": idx.ids[smatch[i]] if smatch[i] >= 0 else None,
                }
            )
        return out

    def decide(self, record: Record, s: dict[str, Any]) -> list[Reason]:
        out = []
        if s["ngram_hits"] >= self.p["min_ngram_hits"]:
            out.append(Reason(self.name, "ngram_overlap", s["ngram_hits"], detail=s["ngram_match"]))
        elif s["containment"] >= self.p["min_containment"]:
            out.append(
                Reason(self.name, "ngram_overlap", s["containment"], detail=s["containment_match"])
            )
        thr = self.p["embedding_threshold"]
        if thr is not None and s["embed_sim"] is not None and s["embed_sim"] >= thr:
            out.append(
                Reason(self.name, "semantic_overlap", s["embed_sim"], detail=s["embed_match"])
            )
        return out
