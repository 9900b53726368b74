"""`tamis split`: stratified, leakage-free train/val/test splits, reproducible by seed.

Records that must stay together form groups: exact duplicates, near-duplicate clusters (MinHash,
as `minhash_dedup`), and records sharing a `--group-by` value. Whole groups are assigned to splits,
greedily, largest first (ties in seeded random order), each to the split whose share of the
group's strata is furthest below target. Strata are labels (`--stratify-by`, default: the
detected label), or length bins for generative data. The result is checked with `leakage` between
every pair of splits and the report says what it found.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from tamis.errors import TamisError
from tamis.ops.base import joined
from tamis.ops.clusters import components
from tamis.ops.dedup import normalise_for_hash
from tamis.records.formats import FieldMap
from tamis.records.io import Reader, write
from tamis.records.model import Record
from tamis.split.leakage import leakage_between, record_text

DEFAULT_NAMES = {2: ["train", "test"], 3: ["train", "val", "test"]}


@dataclass
class SplitResult:
    names: list[str]
    assignment: np.ndarray  # split index per record
    report: dict[str, Any]
    files: dict[str, str]


def _strata(records: list[Record], stratify_by: str | None, bins: int) -> tuple[list[Any], str]:
    if stratify_by in (None, "label") and any(r.label is not None for r in records):
        return [str(r.label) for r in records], "label"
    if stratify_by not in (None, "label", "length"):
        values = [_field(r, stratify_by) for r in records]
        if all(v is None for v in values):
            raise TamisError(f"no record has the field {stratify_by!r} to stratify by")
        return [str(v) for v in values], stratify_by
    lengths = np.array([len(record_text(r)) for r in records])
    edges = np.quantile(lengths, np.linspace(0, 1, bins + 1)[1:-1]) if len(lengths) else []
    return [f"length bin {int(b)}" for b in np.searchsorted(edges, lengths, side="right")], (
        f"length ({bins} bins)"
    )


def _field(r: Record, name: str) -> Any:
    if isinstance(r.raw, dict) and name in r.raw:
        return r.raw[name]
    return r.meta.get(name)


def _groups(
    records: list[Record], group_by: str | None, near_threshold: float | None
) -> tuple[np.ndarray, dict[str, int]]:
    """Group label per record: exact and near duplicates and equal group-by values together."""
    n = len(records)
    texts = [record_text(r) for r in records]
    pairs: list[np.ndarray] = []
    stats: dict[str, int] = {}

    def link(keys: list[Any], name: str) -> None:
        first: dict[Any, int] = {}
        edges = []
        for i, k in enumerate(keys):
            if k is None:
                continue
            j = first.setdefault(k, i)
            if j != i:
                edges.append((j, i))
        stats[name] = len(edges)
        if edges:
            pairs.append(np.array(edges, np.int64))

    link([normalise_for_hash(t, True, True, False) for t in texts], "exact_duplicate_links")
    if near_threshold is not None and n:
        from tamis.ops.near_dedup import near_duplicate_clusters

        answers = [joined(r, ("assistant",)) for r in records]
        labels = near_duplicate_clusters(texts, threshold=near_threshold, answers=answers)
        link([int(x) for x in labels], "near_duplicate_links")
    if group_by:
        values = [_field(r, group_by) for r in records]
        if all(v is None for v in values):
            raise TamisError(f"no record has the field {group_by!r} to group by")
        link([None if v is None else json.dumps(v, sort_keys=True) for v in values], "group_links")
    edges = np.concatenate(pairs) if pairs else np.zeros((0, 2), np.int64)
    return components(n, edges), stats


def assign(groups: np.ndarray, strata: list[Any], ratios: list[float], seed: int) -> np.ndarray:
    """Split index per record: whole groups, largest first, to the split furthest below target
    for the group's strata."""
    n = len(groups)
    names = sorted(set(strata), key=str)
    s_idx = np.array([names.index(s) for s in strata]) if n else np.zeros(0, np.int64)
    ratios_a = np.asarray(ratios, float) / sum(ratios)
    target = np.outer(ratios_a, np.bincount(s_idx, minlength=len(names)))  # split x stratum
    have = np.zeros_like(target)
    members: dict[int, list[int]] = {}
    for i, g in enumerate(groups.tolist()):
        members.setdefault(g, []).append(i)
    order = list(members)
    rng = np.random.default_rng(seed)
    rng.shuffle(order)
    order.sort(key=lambda g: -len(members[g]))  # stable: equal sizes keep the seeded order
    out = np.zeros(n, np.int64)
    for g in order:
        m = members[g]
        c = np.bincount(s_idx[m], minlength=len(names))
        cols = np.flatnonzero(c)
        gap = ((target[:, cols] - have[:, cols]) / np.maximum(target[:, cols], 1e-9)) @ c[cols]
        k = int(np.argmax(gap))
        out[m] = k
        have[k] += c
    return out


def split(
    inputs: str | list[str],
    out: str,
    ratios: list[float] | tuple[float, ...] = (0.8, 0.1, 0.1),
    *,
    stratify_by: str | None = None,
    group_by: str | None = None,
    seed: int = 0,
    names: list[str] | None = None,
    near_threshold: float | None = 0.5,
    length_bins: int = 5,
    format: str | None = None,
    fields: FieldMap | None = None,
    check_semantic: bool = False,
) -> SplitResult:
    """Split `inputs` into files in `out` (train.jsonl, val.jsonl, test.jsonl for three ratios),
    in the input's own format, with `split_report.json`."""
    ratios = [float(x) for x in ratios]
    if len(ratios) < 2 or any(x <= 0 for x in ratios):
        raise TamisError("give two or more positive ratios, e.g. --ratios 0.8,0.1,0.1")
    names = names or DEFAULT_NAMES.get(len(ratios)) or [f"split{i}" for i in range(len(ratios))]
    if len(names) != len(ratios):
        raise TamisError(f"{len(ratios)} ratios but {len(names)} names")
    reader = Reader(
        [inputs] if isinstance(inputs, str) else list(inputs), format, fields or FieldMap()
    )
    records = list(reader)
    if not records:
        raise TamisError("no records to split")
    strata, strat_name = _strata(records, stratify_by, length_bins)
    groups, links = _groups(records, group_by, near_threshold)
    assignment = assign(groups, strata, ratios, seed)
    os.makedirs(out, exist_ok=True)
    files = {}
    parts: dict[str, list[Record]] = {}
    for k, name in enumerate(names):
        parts[name] = [r for r, a in zip(records, assignment.tolist(), strict=True) if a == k]
        files[name] = os.path.join(out, f"{name}.jsonl")
        write(parts[name], files[name])
    # the check: no exact or near overlap between any two splits
    checks = []
    for i, x in enumerate(names):
        for y in names[i + 1 :]:
            rep = leakage_between(
                parts[x],
                parts[y],
                near_threshold=near_threshold or 0.5,
                semantic_threshold=0.95 if check_semantic else None,
            )
            checks.append({"a": x, "b": y, **rep.summary()})
    leaked = sum(
        c["b_records_leaked"].get("exact", 0) + c["b_records_leaked"].get("near", 0) for c in checks
    )
    n_groups = len(set(groups.tolist()))
    # rows that could not be read as records are kept too, with their file, line and error
    files["quarantine"] = os.path.join(out, "quarantine.jsonl")
    with open(files["quarantine"], "w", encoding="utf-8") as fh:
        for q in reader.quarantined:
            fh.write(json.dumps(q.to_json(), ensure_ascii=False) + "\n")
    report = {
        "records": len(records),
        "quarantined": len(reader.quarantined),
        "seed": seed,
        "ratios": dict(zip(names, ratios, strict=True)),
        "stratified_by": strat_name,
        "groups": {
            "count": n_groups,
            "records_in_multi_record_groups": int((np.bincount(groups)[groups] > 1).sum()),
            **links,
        },
        "splits": {
            name: {
                "records": len(parts[name]),
                "share": round(len(parts[name]) / len(records), 4),
                "strata": dict(
                    sorted(
                        Counter(
                            s for s, a in zip(strata, assignment.tolist(), strict=True) if a == k
                        ).items()
                    )
                ),
            }
            for k, name in enumerate(names)
        },
        "leakage_check": {
            "exact_and_near_overlaps": leaked,
            "ok": leaked == 0,
            "pairs": checks,
        },
    }
    with open(os.path.join(out, "split_report.json"), "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=2, ensure_ascii=False, default=str)
        fh.write("\n")
    files["report"] = os.path.join(out, "split_report.json")
    return SplitResult(names, assignment, report, files)
