"""Near-duplicate detection: tamis `minhash_dedup` against datasketch and rensa, in one run.

(a) gsm8k: all 7,473 records plus 1,000 of them copied with 3%, 5% and 10% of their words
    deleted, substituted or swapped (fixed seed); the copy/original pairs are the ground truth.
(b) the real GPTeacher Toolformer ladder: records of `dedupe-only` missing from `similarity-0.9`
    were judged near-duplicates by the data set's authors (method undocumented).

Every engine sees the same texts (instruction, input and output), the same shingles (word 3-grams
of lowercased words), 128 permutations and threshold 0.5, and clusters its LSH matches by
union-find; each runs in its own process, one core, timed from raw texts to clusters (shingling
included); peak RSS is the process's. Pair precision/recall count every pair inside a cluster.

    pip install -e ".[bench]" && python benchmarks/near_dups.py
"""

from __future__ import annotations

import json
import random
import re
import resource
import subprocess
import sys
import time
from itertools import combinations
from pathlib import Path

import numpy as np
from _report import write_section

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
NUM_PERM, THRESHOLD, NGRAM = 128, 0.5, 3
WORD = re.compile(r"\w+")
ENGINES = ("tamis", "datasketch", "rensa")


def text_of(o: dict) -> str:
    return "\n".join(x for x in (o["instruction"], o.get("input", ""), o["output"]) if x)


def gsm_set(rate: float) -> tuple[list[str], set[tuple[int, int]]]:
    from tamis.testing.defects import edit_words

    gsm = json.loads((DATA / "instruct" / "gsm_8k_train.json").read_text())
    rng = random.Random(0)
    vocab = sorted({w for o in gsm[:2000] for w in o["output"].split()})
    picked = rng.sample(range(len(gsm)), 1000)
    texts = [text_of(o) for o in gsm]
    truth = set()
    for i in picked:
        o = gsm[i]
        copy = {k: edit_words(o[k], rate, rng, vocab) if o[k] else "" for k in o}
        truth.add((i, len(texts)))
        texts.append(text_of(copy))
    return texts, truth


def ladder(level: str = "0.9") -> tuple[list[str], set[int]]:
    folder = DATA / "gpteacher_toolformer"
    top = json.loads((folder / "toolformer-dedupe-only-dataset.json").read_text())
    kept = json.loads((folder / f"toolformer-similarity-{level}-dataset.json").read_text())
    keep = {text_of(o) for o in kept}
    texts = [text_of(o) for o in top]
    return texts, {i for i, t in enumerate(texts) if t not in keep}


def py_shingles(text: str) -> list[str]:
    w = WORD.findall(text.lower())
    if len(w) < NGRAM:
        return [" ".join(w)] if w else []
    return [" ".join(w[i : i + NGRAM]) for i in range(len(w) - NGRAM + 1)]


def clusters_from_pairs(n: int, pairs: list[tuple[int, int]]) -> np.ndarray:
    from tamis.ops.clusters import components

    arr = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    return components(n, arr)


def run_engine(engine: str, texts: list[str]) -> np.ndarray:
    """Cluster label per text."""
    n = len(texts)
    if engine == "tamis":
        from tamis.ops.near_dedup import near_duplicate_clusters

        return near_duplicate_clusters(texts, num_perm=NUM_PERM, threshold=THRESHOLD, ngram=NGRAM)
    if engine == "datasketch":
        from datasketch import MinHash, MinHashLSH

        lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM, weights=(0.2, 0.8))
        sigs = []
        for i, t in enumerate(texts):
            m = MinHash(num_perm=NUM_PERM, seed=1)
            m.update_batch([s.encode() for s in py_shingles(t)])
            sigs.append(m)
            lsh.insert(i, m)
        pairs = [(i, j) for i, m in enumerate(sigs) for j in lsh.query(m) if j < i]
        pairs = [(j, i) for i, j in pairs if sigs[i].jaccard(sigs[j]) >= THRESHOLD]
        return clusters_from_pairs(n, pairs)
    if engine == "rensa":
        from rensa import RMinHash, RMinHashLSH

        bands = 32  # rensa needs num_perm divisible by bands; 32 x 4 is tamis's 30 x 4 rounded
        lsh = RMinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM, num_bands=bands)
        sigs = []
        for i, t in enumerate(texts):
            m = RMinHash(num_perm=NUM_PERM, seed=42)
            m.update(py_shingles(t))
            sigs.append(m)
            lsh.insert(i, m)
        pairs = [(j, i) for i, m in enumerate(sigs) for j in lsh.query(m) if j < i]
        pairs = [(j, i) for j, i in pairs if sigs[i].jaccard(sigs[j]) >= THRESHOLD]
        return clusters_from_pairs(n, pairs)
    raise SystemExit(f"unknown engine {engine}")


def cluster_pairs(labels: np.ndarray) -> set[tuple[int, int]]:
    groups: dict[int, list[int]] = {}
    for i, lab in enumerate(labels.tolist()):
        groups.setdefault(lab, []).append(i)
    return {p for g in groups.values() if len(g) > 1 for p in combinations(sorted(g), 2)}


def child(engine: str, dataset: str) -> None:
    texts = gsm_set(float(dataset))[0] if dataset != "ladder" else ladder()[0]
    t0 = time.perf_counter()
    labels = run_engine(engine, texts)
    seconds = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rss": rss, "labels": labels.tolist()}))


def measure(engine: str, dataset: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", engine, dataset],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    rows = []
    for rate in ("0.03", "0.05", "0.10"):
        texts, truth = gsm_set(float(rate))
        for engine in ENGINES:
            r = measure(engine, rate)
            pred = cluster_pairs(np.array(r["labels"]))
            tp = len(pred & truth)
            rows.append(
                (
                    f"gsm8k + 1,000 copies, {float(rate):.0%} edits",
                    engine,
                    tp / len(pred) if pred else 0.0,
                    tp / len(truth),
                    len(texts) / r["seconds"],
                    r["rss"],
                )
            )
            print(rows[-1], flush=True)
    texts, dropped = ladder()
    for engine in ENGINES:
        r = measure(engine, "ladder")
        labels = np.array(r["labels"])
        first: dict[int, int] = {}  # a flagged record is a non-first member of its cluster
        for i, lab in enumerate(labels.tolist()):
            first.setdefault(lab, i)
        flagged = {i for i, lab in enumerate(labels.tolist()) if first[lab] != i}
        tp = len(flagged & dropped)
        rows.append(
            (
                "Toolformer: dropped at similarity-0.9 (records)",
                engine,
                tp / len(flagged) if flagged else 0.0,
                tp / len(dropped),
                len(texts) / r["seconds"],
                r["rss"],
            )
        )
        print(rows[-1], flush=True)

    lines = [
        "| data | engine | precision | recall | records/s | peak RSS (MB) |",
        "|---|---|---:|---:|---:|---:|",
        *[f"| {d} | {e} | {p:.3f} | {r:.3f} | {s:,.0f} | {m:,.0f} |" for d, e, p, r, s, m in rows],
    ]
    speed = {e: np.mean([s for d, x, _, _, s, _ in rows if x == e]) for e in ENGINES}
    lines += [
        "",
        f"Word {NGRAM}-grams of lowercased words, {NUM_PERM} permutations, threshold {THRESHOLD}, "
        "candidate pairs checked by estimated Jaccard, clusters by union-find; one process, one "
        "core each, from raw text to clusters. Mean records/s: "
        + ", ".join(f"{e} {v:,.0f}" for e, v in speed.items())
        + f" (tamis = {speed['tamis'] / speed['datasketch']:.1f}x datasketch, "
        f"{speed['tamis'] / speed['rensa']:.1f}x rensa). Pair precision/recall on gsm8k; on the "
        "Toolformer ladder, records flagged vs records the data set's authors dropped (their "
        "method is undocumented, so this measures agreement rather than truth).",
    ]
    # the whole ladder: how tamis's flags line up with each level's drops, by threshold
    from tamis.ops.near_dedup import near_duplicate_clusters

    lines += [
        "",
        "Toolformer ladder, tamis flags (non-first cluster members) against the records each "
        "level dropped:",
        "",
        "| tamis threshold | level | dropped | flagged | precision | recall |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for thr in (0.5, 0.7, 0.9):
        labels = near_duplicate_clusters(ladder()[0], threshold=thr)
        flagged = {i for i, lab in enumerate(labels.tolist()) if lab != i}
        for level in ("0.9", "0.8", "0.7", "0.6"):
            _, dropped = ladder(level)
            tp = len(flagged & dropped)
            lines.append(
                f"| {thr} | {level} | {len(dropped):,} | {len(flagged):,} | "
                f"{tp / max(1, len(flagged)):.3f} | {tp / len(dropped):.3f} |"
            )
    table = "\n".join(lines)
    print(table)
    write_section("near_dups", "## Near-duplicates (`benchmarks/near_dups.py`)\n\n" + table)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        main()
