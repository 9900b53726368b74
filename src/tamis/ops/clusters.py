"""Duplicate clusters shared by exact, near (MinHash) and semantic dedup: connected components
(what must never be split apart, e.g. across train/test) or stars (what may be dropped: each
member similar to its keeper) of similar pairs, a keep policy, and the rows of `clusters.jsonl`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from tamis.errors import RecipeError
from tamis.ops.base import CrossContext, Decisions, json_number

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


def priority(
    n: int,
    alive: np.ndarray,
    keep: str,
    lengths: np.ndarray | None = None,
    score: np.ndarray | None = None,
) -> np.ndarray:
    """Record indices, the one to keep first: alive before dropped, then the policy (`first`:
    input order, `longest`, `best` score), ties to the first."""
    if keep == "first":
        second = np.zeros(n)
    elif keep == "longest":
        assert lengths is not None
        second = -np.asarray(lengths).astype(float)
    else:
        assert score is not None
        s = np.asarray(score).astype(float)
        second = -np.where(np.isnan(s), -np.inf, s)
    idx = np.arange(n)
    return np.lexsort((idx, second, ~np.asarray(alive, bool)))


def star_clusters(n: int, pairs: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Cluster label per record, each cluster a star: taking records in `order` (keep priority),
    an unclaimed record becomes a centre and claims its unclaimed direct neighbours.

    Unlike connected components, a chain a~b~c with a and c unlike each other does not put c
    with a: every record dropped is similar (a verified pair) to the record kept. Labels are the
    centre's index."""
    labels = np.arange(n)
    if not len(pairs):
        return labels
    both = np.concatenate([pairs, pairs[:, ::-1]])
    both = both[np.argsort(both[:, 0], kind="stable")]
    starts = np.searchsorted(both[:, 0], np.arange(n + 1))
    nbr = both[:, 1].tolist()
    claimed = np.zeros(n, bool)
    has = np.zeros(n, bool)
    has[both[:, 0]] = True
    bounds = starts.tolist()
    for c in order[has[order]].tolist():  # records without pairs stay alone
        if claimed[c]:
            continue
        claimed[c] = True
        for v in nbr[bounds[c] : bounds[c + 1]]:
            if not claimed[v]:
                claimed[v] = True
                labels[v] = c
    return labels


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
    """Members of clusters of 2+ records (ascending), and the keeper of each member's cluster.

    Keepers are chosen among members no other operator dropped, when there are any; then by
    policy: `first` in input order, `longest` text, or `best` (highest) score; ties go to the first.
    """
    n = len(labels)
    if not n:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    size = np.bincount(labels, minlength=labels.max() + 1)
    members = np.flatnonzero(size[labels] > 1)
    if not len(members):
        return members, members
    lab = labels[members]
    if keep == "first":
        second = np.zeros(len(members))
    elif keep == "longest":
        assert lengths is not None
        second = -np.asarray(lengths)[members].astype(float)
    else:
        assert score is not None
        s = np.asarray(score)[members].astype(float)
        second = -np.where(np.isnan(s), -np.inf, s)
    order = np.lexsort((members, second, ~np.asarray(alive)[members], lab))
    lab_sorted = lab[order]
    head = np.concatenate([[True], lab_sorted[1:] != lab_sorted[:-1]])
    keeper_of = np.zeros(labels.max() + 1, np.int64)
    keeper_of[lab_sorted[head]] = members[order][head]
    return members, keeper_of[lab]


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
) -> Decisions:
    """Decisions for every non-keeper (naming its keeper and similarity); the cluster rows are
    written lazily to `artifact`, clusters in order of their first member."""
    members, keeper = keepers(labels, np.asarray(ctx.alive), keep, lengths, score)
    sim = similarity(members, keeper) if len(members) else np.zeros(0)
    sim = np.where(members == keeper, 1.0, sim)
    drop = members != keeper
    ids: Sequence[Any] = ctx.ids
    # clusters in order of their first member; members in input order
    first = np.full(labels.max() + 1 if len(labels) else 0, len(labels), np.int64)
    np.minimum.at(first, labels[members], members)
    order = np.lexsort((members, first[labels[members]]))
    n_clusters = int(len(np.unique(labels[members]))) if len(members) else 0

    def rows() -> Iterator[dict[str, Any] | str]:
        m_sorted, k_sorted, s_sorted = members[order], keeper[order], sim[order]
        if not len(m_sorted):
            return
        lab_sorted = labels[m_sorted]
        starts = np.flatnonzero(np.concatenate([[True], lab_sorted[1:] != lab_sorted[:-1]]))
        ends = np.concatenate([starts[1:], [len(m_sorted)]])
        if hasattr(ids, "raw"):  # the id table: write each row as JSON text straight away
            yield from _rows_json(op, ids, m_sorted, k_sorted, s_sorted, starts, ends)
            return
        for n, (a, b) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
            yield {
                "cluster": f"{op}:{n}",
                "size": b - a,
                "op": op,
                "kept": ids[int(k_sorted[a])],
                "members": [
                    {"id": ids[int(m)], "similarity": round(float(x), 4)}
                    for m, x in zip(m_sorted[a:b].tolist(), s_sorted[a:b].tolist(), strict=True)
                ],
            }

    ctx.artifacts[artifact] = _Chain(ctx.artifacts.get(artifact), rows)
    ctx.notes["clusters"] = n_clusters
    ctx.notes["records_in_clusters"] = int(len(members))
    return Decisions(op, reason, members[drop], sim[drop], keeper[drop])


def _rows_json(
    op: str,
    ids: Any,
    members: np.ndarray,
    keepers: np.ndarray,
    sims: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
) -> Iterator[str]:
    """Cluster rows as the JSON text `dumps(row)` would give, without decoding ids; a slice of
    Python values at a time, so memory does not grow with the number of duplicates."""
    op_json = json.dumps(op)
    n = 0
    for lo in range(0, len(starts), 4096):
        st, en = starts[lo : lo + 4096].tolist(), ends[lo : lo + 4096].tolist()
        m = members[st[0] : en[-1]].tolist()
        s = sims[st[0] : en[-1]].tolist()
        k = keepers[st].tolist()
        base = st[0]
        for a, b, keep in zip(st, en, k, strict=True):
            listed = ", ".join(
                f'{{"id": {ids.raw(mm)}, "similarity": {json_number(round(x, 4))}}}'
                for mm, x in zip(m[a - base : b - base], s[a - base : b - base], strict=True)
            )
            yield (
                f'{{"cluster": {json.dumps(f"{op}:{n}", ensure_ascii=False)}, "size": {b - a}, '
                f'"op": {op_json}, "kept": {ids.raw(keep)}, "members": [{listed}]}}'
            )
            n += 1


class _Chain:
    """Rows of an artifact from several operators, made only when the file is written."""

    def __init__(self, before: Any, make: Callable[[], Iterator[dict[str, Any]]]):
        self.before, self.make = before, make

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self.before is not None:
            yield from self.before
        yield from self.make()
