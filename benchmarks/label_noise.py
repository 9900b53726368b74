"""Wrong-label detection on banking77 train with 10% and 20% symmetric label noise.

Noise: a fixed-seed random share of records gets a label drawn uniformly from the other 76
classes. Reported: precision, recall and F1 of the flagged records against the flipped ones, for
tamis (`find_label_issues`: MiniLM embeddings, logistic regression C=10, 5-fold out-of-sample
probabilities, cleanlab `filter_by="both"`) and, in the same run, the reference: cleanlab's
`find_label_issues` with its defaults on TF-IDF + logistic-regression 5-fold probabilities.
`--with-training` adds tamis' `rank: training` (as many flags, chosen by the lowest area under
the margin of a 3-epoch MiniLM fine-tune; about 8 minutes per noise level on 2 CPU cores).

    pip install -e ".[embed,labels]" && python benchmarks/label_noise.py [--with-training]
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
from _report import write_section

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "banking77"


def noisy(y: np.ndarray, n_classes: int, rate: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = y.copy()
    for i in rng.choice(len(y), int(round(rate * len(y))), replace=False):
        out[i] = rng.choice([c for c in range(n_classes) if c != y[i]])
    return out


def scores(flag: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    tp = int((flag & truth).sum())
    p = tp / max(1, int(flag.sum()))
    r = tp / max(1, int(truth.sum()))
    return p, r, 2 * p * r / (p + r) if p + r else 0.0


def reference(texts: list[str], y: np.ndarray) -> np.ndarray:
    from cleanlab.filter import find_label_issues
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    x = TfidfVectorizer().fit_transform(texts)
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    probs = cross_val_predict(
        LogisticRegression(max_iter=1000), x, y, cv=cv, method="predict_proba", n_jobs=2
    )
    flag = np.zeros(len(y), bool)
    flag[find_label_issues(y, probs)] = True
    return flag


def main() -> None:
    from tamis.models.embeddings import embed_texts
    from tamis.ops.labels import find_label_issues, rank_by_training

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--with-training", action="store_true", help="add rank: training")
    a = ap.parse_args()

    rows = list(csv.DictReader(open(DATA / "train.csv", encoding="utf-8")))  # noqa: SIM115
    texts = [r["text"] for r in rows]
    classes = sorted({r["category"] for r in rows})
    y0 = np.array([classes.index(r["category"]) for r in rows])
    t0 = time.perf_counter()
    emb = embed_texts(texts)
    embed_s = time.perf_counter() - t0
    table = [
        "| noise | method | precision | recall | F1 | seconds |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    summary = []
    for rate, seed in ((0.10, 1), (0.20, 2)):
        y = noisy(y0, len(classes), rate, seed)
        truth = y != y0
        t0 = time.perf_counter()
        ref = reference(texts, y)
        ref_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = find_label_issues(None, [classes[i] for i in y], features=emb)
        ours_s = time.perf_counter() - t0
        rp, rr, rf = scores(ref, truth)
        p, r, f = scores(res.flagged, truth)
        table.append(
            f"| {rate:.0%} | cleanlab defaults on TF-IDF + LR (reference) | {rp:.3f} | {rr:.3f} "
            f"| {rf:.3f} | {ref_s:.1f} |"
        )
        table.append(
            f"| {rate:.0%} | tamis (MiniLM + LR, cleanlab both, 2 rounds) | {p:.3f} "
            f"| {r:.3f} | **{f:.3f}** | {ours_s:.1f} |"
        )
        summary.append(f"{rate:.0%} noise: F1 {f:.3f} vs {rf:.3f} ({f - rf:+.3f})")
        print(table[-2], table[-1], sep="\n", flush=True)
        if a.with_training:
            t0 = time.perf_counter()
            fine = rank_by_training(res, texts, seed=0)
            fine_s = time.perf_counter() - t0
            tp, tr, tf = scores(fine.flagged, truth)
            table.append(
                f"| {rate:.0%} | tamis, `rank: training` (as many flags, by a fine-tune's AUM) "
                f"| {tp:.3f} | {tr:.3f} | {tf:.3f} | {fine_s + ours_s:.0f} |"
            )
            print(table[-1], flush=True)
    body = "\n".join(table) + (
        f"\n\nbanking77 train ({len(texts):,} records, {len(classes)} classes). "
        + "; ".join(summary)
        + ". Target: at least +0.10 F1 over the reference at both noise levels. tamis seconds "
        "exclude embedding the texts once: "
        + (f"{embed_s:.0f} s here." if embed_s >= 1 else "read from the embedding cache here.")
    )
    print(body)
    write_section("label_noise", "## Wrong labels (`benchmarks/label_noise.py`)\n\n" + body)


if __name__ == "__main__":
    main()
