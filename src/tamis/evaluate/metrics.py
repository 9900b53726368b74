"""Metrics: classification (scikit-learn), generation (exact match, contains-the-answer, ROUGE-L,
chrF) and a paired bootstrap for the difference between two models on the same examples.

Per-example scores are returned next to the aggregate so that a comparison can resample
examples (paired bootstrap) instead of trusting a single number.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")


def classification_metrics(y_true: Sequence[str], y_pred: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro and per-class precision/recall/F1 and the confusion matrix."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    labels = sorted({str(y) for y in y_true} | {str(y) for y in y_pred})
    t = [str(y) for y in y_true]
    p = [str(y) for y in y_pred]
    prec, rec, f1, support = precision_recall_fscore_support(
        t, p, labels=labels, average=None, zero_division=0
    )
    macro = precision_recall_fscore_support(
        t, p, labels=sorted(set(t)), average="macro", zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(t, p)),
        "macro_precision": float(macro[0]),
        "macro_recall": float(macro[1]),
        "macro_f1": float(macro[2]),
        "per_class": {
            lab: {
                "precision": float(prec[i]),
                "recall": float(rec[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, lab in enumerate(labels)
        },
        "labels": labels,
        "confusion": confusion_matrix(t, p, labels=labels).tolist(),
        "n": len(t),
    }


def macro_f1(y_true: Sequence[str], y_pred: Sequence[str]) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y_true, y_pred, labels=sorted(set(y_true)), average="macro"))


def final_number(text: str) -> str | None:
    """The last number in a text, normalised ("$1,200.00" -> "1200"): gsm8k-style answers."""
    found = _NUMBER.findall(text or "")
    if not found:
        return None
    s = found[-1].replace("$", "").replace(",", "")
    try:
        v = float(s)
    except ValueError:
        return None
    return str(int(v)) if v == int(v) else repr(v)


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", (text or "").lower()).split())


def answer_scores(pred: str, ref: str) -> dict[str, float]:
    """Exact match and "contains the answer" for one prediction.

    When the reference carries a number, the answer is its final number (gsm8k-style maths):
    exact match compares the final numbers, contains asks whether the reference's number appears
    among the prediction's numbers. Otherwise both compare normalised text.
    """
    ref_num = final_number(ref)
    if ref_num is not None:
        pred_nums = {final_number(n) for n in _NUMBER.findall(pred or "")}
        return {
            "exact_match": float(final_number(pred) == ref_num),
            "contains_answer": float(ref_num in pred_nums),
        }
    p, r = _norm(pred), _norm(ref)
    return {"exact_match": float(p == r), "contains_answer": float(bool(r) and r in p)}


def rouge_l(preds: Sequence[str], refs: Sequence[str]) -> list[float]:
    """ROUGE-L F-measure per example (Google's rouge-score, no stemming: no downloads)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    return [
        scorer.score(r or "", p or "")["rougeL"].fmeasure for p, r in zip(preds, refs, strict=True)
    ]


def chrf(preds: Sequence[str], refs: Sequence[str]) -> tuple[float, list[float]]:
    """Corpus chrF (sacrebleu) and the sentence-level chrF of each example."""
    import sacrebleu

    corpus = sacrebleu.corpus_chrf(list(preds), [list(refs)]).score
    per = [sacrebleu.sentence_chrf(p, [r]).score for p, r in zip(preds, refs, strict=True)]
    return float(corpus), [float(x) for x in per]


def paired_bootstrap(
    stat: Callable[[np.ndarray], tuple[float, float]],
    n: int,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, float]:
    """Confidence interval of a difference between two models on the same n examples.

    `stat(idx)` returns (value of model A, value of model B) on the examples `idx`; examples
    are resampled with replacement, the same indices for both models (paired).
    """
    full = stat(np.arange(n))
    rng = np.random.default_rng(seed)
    diffs = np.empty(resamples)
    for i in range(resamples):
        a, b = stat(rng.integers(0, n, n))
        diffs[i] = a - b
    lo, hi = np.quantile(diffs, [(1 - level) / 2, 1 - (1 - level) / 2])
    return {
        "model": float(full[0]),
        "base": float(full[1]),
        "diff": float(full[0] - full[1]),
        "ci_low": float(lo),
        "ci_high": float(hi),
        "significant": bool(lo > 0 or hi < 0),
    }


def mean_ci(values: Sequence[float], resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Bootstrap 95% interval of a mean (one model)."""
    arr = np.asarray(values, dtype=float)
    if len(arr) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = arr[rng.integers(0, len(arr), (resamples, len(arr)))].mean(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return float(lo), float(hi)
