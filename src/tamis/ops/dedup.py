"""`exact_dedup`: the same example more than once. The first is kept; each copy names it.

A cross-record operator: each record's key is a 64-bit hash of its normalised text, computed while
streaming; one vectorised pass over all keys (numpy) finds the copies.
"""

from __future__ import annotations

import hashlib
import string
from typing import Any

import numpy as np

from tamis.ops.base import CrossContext, Operator, Param, Reason, register
from tamis.ops.clusters import decide_clusters
from tamis.records.model import Record

PUNCT = str.maketrans("", "", string.punctuation)


def normalise_for_hash(text: str, lowercase: bool, whitespace: bool, punctuation: bool) -> str:
    if lowercase:
        text = text.lower()
    if punctuation:
        text = text.translate(PUNCT)
    if whitespace:
        text = " ".join(text.split())  # the same as re.sub(r"\s+", " ", text).strip(), faster
    return text


@register
class ExactDedup(Operator):
    name = "exact_dedup"
    description = "exact duplicates after normalisation (case/whitespace/punctuation by option)"
    params = {
        "lowercase": Param(True, "ignore case"),
        "whitespace": Param(True, "ignore differences in whitespace"),
        "punctuation": Param(False, "ignore ASCII punctuation"),
        "include_label": Param(False, "records with the same text but different labels differ"),
    }
    reasons = {"duplicate": "an earlier record says the same (see duplicate_of)"}
    key_dtype = "uint64"
    artifacts = ("clusters.jsonl",)

    def key(self, record: Record) -> int:
        p = self.p
        norm = (p["lowercase"], p["whitespace"], p["punctuation"])
        parts = [
            f"{t.role}\x1f{normalise_for_hash(t.text, *norm)}"
            + (f"\x1f{t.calls_text}" if t.calls_tools else "")
            for t in record.turns
        ]
        if p["include_label"] and record.label is not None:
            parts.append(f"label\x1f{record.label}")
        digest = hashlib.blake2b("\x1e".join(parts).encode("utf-8", "surrogatepass"), digest_size=8)
        return int.from_bytes(digest.digest(), "little")

    def keys(self, records: list[Record]) -> np.ndarray:
        return np.fromiter((self.key(r) for r in records), np.uint64, len(records))

    def decide_all(self, keys: Any, ctx: CrossContext) -> dict[int, Reason]:
        keys = np.asarray(keys, dtype=np.uint64)
        if not len(keys):
            return {}
        _, labels = np.unique(keys, return_inverse=True)
        return decide_clusters(
            self.name, "duplicate", labels.reshape(-1), ctx, "first", lambda m, k: np.ones(len(m))
        )
