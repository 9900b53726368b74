"""`offensive`: profane or abusive text, by alt-profanity-check's bundled linear model.

The model is TF-IDF over single words and five calibrated linear SVMs. Loading it through
scikit-learn costs every worker ~130 MB (scikit-learn, SciPy and the pickles); the same arithmetic
needs a 15k-word vocabulary and a few arrays. So its numbers are exported once per installed
version (in a subprocess, so that scikit-learn never loads here) to `~/.cache/tamis/models/`, and
each worker scores with numpy: probabilities equal to alt-profanity-check's own (tested to 1e-9).
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from tamis.errors import TamisError
from tamis.ops.base import Operator, Param, Reason, joined, register
from tamis.records.model import Record
from tamis.storage import default_cache_dir

TOKEN = re.compile(r"(?u)\b\w\w+\b")  # the vectorizer's token_pattern (on lowercased text)


def export_model(path: str) -> None:
    """Write alt-profanity-check's vocabulary, idf and calibrated SVM numbers to an .npz."""
    from profanity_check import profanity_check as pc

    vec, model = pc.vectorizer, pc.model
    p = vec.get_params()
    expected = ((1, 1), "word", "l2", True, TOKEN.pattern, False, True)
    got = (
        p["ngram_range"],
        p["analyzer"],
        p["norm"],
        p["lowercase"],
        p["token_pattern"],
        p["sublinear_tf"],
        p["use_idf"],
    )
    cal = model.calibrated_classifiers_
    if got != expected or any(c.method != "sigmoid" or len(c.classes) != 2 for c in cal):
        raise TamisError(f"alt-profanity-check's model is not the one tamis knows ({p})")
    terms = sorted(vec.vocabulary_, key=vec.vocabulary_.get)
    tmp = f"{path}.{os.getpid()}.tmp.npz"
    np.savez(
        tmp,
        terms=np.array(terms),
        idf=vec.idf_,
        w=np.stack([c.estimator.coef_.ravel() for c in cal], axis=1),
        b=np.array([float(c.estimator.intercept_[0]) for c in cal]),
        a=np.array([c.calibrators[0].a_ for c in cal]),
        c=np.array([c.calibrators[0].b_ for c in cal]),
    )
    os.replace(tmp, path)


def model_path() -> Path:
    version = importlib.metadata.version("alt-profanity-check")
    return Path(default_cache_dir()) / "models" / f"alt-profanity-check-{version}.npz"


def ensure_model(path: str | Path | None = None) -> Path:
    """The exported model's path, exporting it first (in a subprocess) when it is not there."""
    path = Path(path or model_path())
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        code = f"from tamis.ops.offensive import export_model; export_model({str(path)!r})"
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if done.returncode:
            raise TamisError(f"could not read alt-profanity-check's model: {done.stderr[-500:]}")
    return path


class ProfanityModel:
    """alt-profanity-check's `predict_prob`, in numpy, for a batch of texts."""

    def __init__(self, path: str | Path | None = None):
        with np.load(ensure_model(path)) as z:
            self.vocab = {t: i for i, t in enumerate(z["terms"].tolist())}
            self.idf, self.w = z["idf"], z["w"]
            self.b, self.a, self.c = z["b"], z["a"], z["c"]

    def predict_prob(self, texts: list[str]) -> np.ndarray:
        """Probability of offensive text per text (the mean of the five calibrated SVMs)."""
        vocab = self.vocab
        rows: list[int] = []
        cols: list[int] = []
        for i, text in enumerate(texts):
            found = [j for j in map(vocab.get, TOKEN.findall(text.lower())) if j is not None]
            rows.extend([i] * len(found))
            cols.extend(found)
        n, size = len(texts), len(self.idf)
        # term counts per (text, term), then tf-idf, l2-normalised per text
        # cols as int64 too: an empty list added to an int array makes it float (and t float)
        key, count = np.unique(
            np.array(rows, np.int64) * size + np.array(cols, np.int64), return_counts=True
        )
        r, t = key // size, key % size
        x = count * self.idf[t]
        norm = np.sqrt(np.bincount(r, x * x, minlength=n))
        x = x / np.where(norm > 0, norm, 1.0)[r]
        k = self.w.shape[1]
        d = np.stack([np.bincount(r, x * self.w[t, j], minlength=n) for j in range(k)], 1)
        d = d + self.b  # one decision value per SVM (bincount of nothing is int: not +=)
        return (1.0 / (1.0 + np.exp(self.a * d + self.c))).mean(axis=1)


@register
class Offensive(Operator):
    name = "offensive"
    description = "offensive or profane text (alt-profanity-check probability, offline)"
    requires = ("profanity_check",)
    extra = "filters"
    cacheable = True
    params = {
        "threshold": Param(0.9, "drop when the probability of offensive text reaches this"),
        "roles": Param(["user", "assistant", "text"], "roles whose text is scored", compute=True),
    }
    signals = {"offensive_prob": "float32"}
    reasons = {"offensive": "likely offensive or profane"}

    def prepare(self) -> None:
        ensure_model()

    def setup(self) -> None:
        self._model = ProfanityModel()

    def compute(self, records: list[Record]) -> list[dict[str, Any]]:
        roles = tuple(self.p["roles"])
        texts = [joined(r, roles) for r in records]
        probs = self._model.predict_prob(texts) if texts else []
        return [{"offensive_prob": float(p)} for p in probs]

    def decide(self, record: Record, signals: dict[str, Any]) -> list[Reason]:
        prob = signals.get("offensive_prob") or 0.0
        if prob >= self.p["threshold"]:
            return [Reason(self.name, "offensive", prob)]
        return []
