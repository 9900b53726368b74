"""Duplicate clusters shared by exact, near (MinHash) and semantic dedup: connected components of
similar pairs, a keep policy, and the rows of `clusters.jsonl`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tamis.errors import RecipeError
from tamis.ops.base import CrossContext, Reason

POLICIES = ("first", "longest", "best")


def components(n: int, pairs: np.ndarray) -> np.ndarray:
    """Cluster label per record: union-find over the pairs, vectorised (min-label hooking and
    pointer jumping). A label is the smallest index in its cluster, so labels are stable."""
    parent = np.arange(n)
    if not len(pairs):
        return parent
    a, b = pairs[:, 0], pairs[:, 1]
    while True:
        pa, pb = parent[a], parent[b]
        if np.array_equal(pa, pb):
            return parent
        low = np.minimum(pa, pb)
        np.minimum.at(parent, pa, low)
        np.minimum.at(parent, pb, low)
        while True:  # point every record at its root
            up = parent[parent]
            if np.array_equal(up, parent):
                break
            parent = up


def check_policy(op: str, keep: str, best_by: str | None) -> None:
    if keep not in POLICIES:
        raise RecipeError(f"{op}: keep must be one of {', '.join(POLICIES)}, not {keep!r}")
    if keep == "best" and not best_by:
        raise RecipeError(
            f"{op}: keep: best needs best_by, a signal such as heuristics.words_answer"
        )


def keepers(
    labels: np.ndarray,
    alive: np.ndarray,
    keep: str,
    lengths: np.ndarray | None = None,
    score: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Members of clusters of 2+ records, and the keeper of each member's cluster.

    Keepers are chosen among members no other operator dropped, when there are any; then by
    policy: `first` in input order, `longest` text, or `best` (highest) score; ties go to the first.
    """
    n = len(labels)
    idx = np.arange(n)
    size = np.bincount(labels, minlength=labels.max() + 1 if n else 0)
    members = idx[size[labels] > 1]
    if not len(members):
        return members, members
    lab = labels[members]
    if keep == "first":
        second = np.zeros(len(members))
    elif keep == "longest":
        assert lengths is not None
        second = -lengths[members].astype(float)
    else:
        assert score is not None
        s = score[members].astype(float)
        second = -np.where(np.isnan(s), -np.inf, s)
    order = np.lexsort((members, second, ~alive[members], lab))
    lab_sorted = lab[order]
    head = np.concatenate([[True], lab_sorted[1:] != lab_sorted[:-1]])
    keeper_of_label = {int(lab_sorted[i]): int(members[order][i]) for i in np.flatnonzero(head)}
    keeper = np.array([keeper_of_label[int(x)] for x in lab])
    return members, keeper


def decide_clusters(
    op: str,
    reason: str,
    labels: np.ndarray,
    ctx: CrossContext,
    keep: str,
    similarity: Callable[[np.ndarray, np.ndarray], np.ndarray],
    lengths: np.ndarray | None = None,
    score: np.ndarray | None = None,
    artifact: str = "clusters.jsonl",
) -> dict[int, Reason]:
    """Reasons for every non-keeper (naming its keeper and similarity) and the cluster rows."""
    members, keeper = keepers(labels, np.asarray(ctx.alive), keep, lengths, score)
    ids: Sequence[Any] = ctx.ids
    sim = similarity(members, keeper) if len(members) else np.zeros(0)
    out: dict[int, Reason] = {}
    rows: dict[int, dict[str, Any]] = {}
    for m, k, s in zip(members.tolist(), keeper.tolist(), sim.tolist(), strict=True):
        row = rows.setdefault(k, {"op": op, "kept": ids[k], "members": []})
        row["members"].append({"id": ids[m], "similarity": round(float(s), 4)})
        if m != k:
            out[m] = Reason(op, reason, float(s), duplicate_of=ids[k])
    # members come in input order, so clusters come in order of their first member
    clusters = [
        {"cluster": f"{op}:{n}", "size": len(row["members"]), **row}
        for n, row in enumerate(rows.values())
    ]
    ctx.artifacts.setdefault(artifact, []).extend(clusters)
    ctx.notes["clusters"] = len(clusters)
    ctx.notes["records_in_clusters"] = int(len(members))
    return out
