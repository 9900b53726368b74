"""`tamis leakage A B`: what of B (a test set) is already in A (a training set), and how.

Three kinds, each pair counted once under the strongest kind:
- **exact**: the same text after lowercasing and collapsing whitespace;
- **near**: MinHash LSH over word 3-grams, estimated Jaccard at or above `near_threshold` (the
  `minhash_dedup` operator's machinery and defaults: two records that both answer must answer
  alike, so a shared system prompt or tool description alone is no overlap);
- **semantic**: MiniLM cosine at or above `semantic_threshold` (needs `tamis[embed]`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tamis.ops.base import joined, record_text
from tamis.ops.dedup import normalise_for_hash
from tamis.records.io import Reader
from tamis.records.model import Record

KINDS = ("exact", "near", "semantic")


@dataclass
class LeakageReport:
    """Overlaps between A and B: for each kind, (a index, b index, score) triples."""

    a_count: int
    b_count: int
    pairs: dict[str, list[tuple[int, int, float]]] = field(default_factory=dict)
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    checked: list[str] = field(default_factory=list)

    def leaked(self, kind: str) -> int:
        """B records with at least one overlap of this kind."""
        return len({b for _, b, _ in self.pairs.get(kind, [])})

    @property
    def total(self) -> int:
        return len({b for k in self.pairs for _, b, _ in self.pairs[k]})

    def summary(self) -> dict[str, Any]:
        return {
            "a_records": self.a_count,
            "b_records": self.b_count,
            "checked": self.checked,
            "b_records_leaked": {k: self.leaked(k) for k in self.checked},
            "b_records_leaked_any": self.total,
            "examples": self.examples,
        }


def leakage_between(
    a: list[Record],
    b: list[Record],
    *,
    near_threshold: float | None = 0.5,
    semantic_threshold: float | None = 0.95,
    examples: int = 5,
) -> LeakageReport:
    """Exact, near and semantic overlap of records `b` with records `a`."""
    ta = [record_text(r) for r in a]
    tb = [record_text(r) for r in b]
    rep = LeakageReport(len(a), len(b))
    seen: set[tuple[int, int]] = set()

    def add(kind: str, found: list[tuple[int, int, float]]) -> None:
        fresh = [(i, j, s) for i, j, s in found if (i, j) not in seen]
        seen.update((i, j) for i, j, _ in fresh)
        rep.pairs[kind] = fresh
        rep.examples[kind] = [
            {
                "a_id": a[i].id,
                "b_id": b[j].id,
                "score": round(s, 4),
                "a": _snip(ta[i]),
                "b": _snip(tb[j]),
            }
            for i, j, s in fresh[:examples]
        ]

    # exact
    norm_a: dict[str, int] = {}
    for i, t in enumerate(ta):
        norm_a.setdefault(normalise_for_hash(t, True, True, False), i)
    exact = []
    for j, t in enumerate(tb):
        i = norm_a.get(normalise_for_hash(t, True, True, False))
        if i is not None:
            exact.append((i, j, 1.0))
    rep.checked.append("exact")
    add("exact", exact)
    # near: MinHash over both sets, pairs across them
    if near_threshold is not None and ta and tb:
        from tamis.ops import lsh
        from tamis.ops.near_dedup import MinHashDedup

        op = MinHashDedup(threshold=near_threshold)
        sig = op.texts_keys(ta + tb)["sig"]
        pairs = lsh.candidate_pairs(sig, op.bands, op.rows)
        cross = pairs[(pairs[:, 0] < len(ta)) & (pairs[:, 1] >= len(ta))]
        est = lsh.estimated_jaccard(sig, cross)
        keep = est >= near_threshold
        if len(cross):  # records that both answer must answer alike, as in `minhash_dedup`
            answers = op.texts_keys([joined(r, ("assistant",)) for r in [*a, *b]])
            keep &= op.answers_alike(answers["sig"], answers["has"], cross)
        near = [
            (int(i), int(j) - len(ta), float(s))
            for (i, j), s in zip(cross[keep].tolist(), est[keep].tolist(), strict=True)
        ]
        rep.checked.append("near")
        add("near", sorted(near, key=lambda x: (x[1], -x[2], x[0])))
    # semantic: each B record's nearest A record
    if semantic_threshold is not None and ta and tb:
        from tamis.models import embeddings

        if embeddings.available():
            ea, eb = embeddings.embed_texts(ta), embeddings.embed_texts(tb)
            sem = []
            for s in range(0, len(tb), 1024):
                sims = eb[s : s + 1024] @ ea.T
                best = sims.argmax(axis=1)
                val = sims[np.arange(len(best)), best]
                for k in np.flatnonzero(val >= semantic_threshold):
                    sem.append((int(best[k]), s + int(k), float(val[k])))
            rep.checked.append("semantic")
            add("semantic", sem)
    return rep


def leakage(
    a_inputs: str | list[str],
    b_inputs: str | list[str],
    *,
    near_threshold: float | None = 0.5,
    semantic_threshold: float | None = 0.95,
    examples: int = 5,
    format: str | None = None,
) -> LeakageReport:
    """Read two datasets (files or globs, any supported format) and report B's overlap with A."""
    a = list(Reader(_as_list(a_inputs), format=format))
    b = list(Reader(_as_list(b_inputs), format=format))
    return leakage_between(
        a,
        b,
        near_threshold=near_threshold,
        semantic_threshold=semantic_threshold,
        examples=examples,
    )


def _as_list(x: str | list[str]) -> list[str]:
    return [x] if isinstance(x, str) else list(x)


def _snip(text: str, n: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"
