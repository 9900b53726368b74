"""report.html for `tamis profile`: one section per question a person asks of a dataset."""

from __future__ import annotations

from typing import Any

import numpy as np

from tamis.report.html import Report, plt_figure

ROLE_COLORS = {"user": "#2e7dd7", "assistant": "#2e9d5b", "system": "#8e44ad", "text": "#d35400"}


def profile_report(prof: Any, hist: dict[str, Any]) -> Report:
    d = prof.data
    rep = Report("tamis profile", " · ".join(d["inputs"]))
    dup = d["duplicates"]
    cards: dict[str, Any] = {
        "records": d["records"],
        "unreadable": d["quarantined"],
        "exact duplicate copies": dup["exact"]["extra_copies"],
        "near-duplicate copies": dup["near"].get("extra_copies", 0),
    }
    if d.get("labels"):
        cards["classes"] = d["labels"]["classes"]
    if d.get("topics"):
        cards["diversity"] = round(d["topics"]["diversity"], 3)
    rep.cards(cards)
    rep.pre("\n".join(prof.summary_lines()))

    rep.heading("Sizes")
    rep.text(f"formats: {d['formats']}; tokens counted with {d['tokenizer']}")
    rep.table(
        [
            {
                "role": role,
                "turns": s["chars"]["n"],
                "chars median": s["chars"]["median"],
                "chars p95": s["chars"]["p95"],
                "chars max": s["chars"]["max"],
                "tokens median": s["tokens"].get("median", float("nan")),
                "tokens p95": s["tokens"].get("p95", float("nan")),
                "tokens max": s["tokens"].get("max", float("nan")),
            }
            for role, s in d["lengths"].items()
        ]
    )
    for unit in ("tokens", "chars"):
        fig, ax = plt_figure(7, 3.2)
        for role, h in hist.items():
            v = np.asarray(h[unit], dtype=float)
            if len(v):
                top = np.quantile(v, 0.99) if len(v) > 20 else v.max()
                ax.hist(
                    np.clip(v, 0, top),
                    bins=40,
                    alpha=0.6,
                    label=role,
                    color=ROLE_COLORS.get(role),
                )
        ax.set_xlabel(f"{unit} per turn (clipped at the 99th percentile)")
        ax.set_ylabel("turns")
        ax.legend()
        rep.figure(fig, f"length in {unit}, per role")

    if d.get("languages"):
        rep.heading("Languages")
        share = d["languages"]["share"]
        fig, ax = plt_figure(6, 2.8)
        top = list(share.items())[:10]
        ax.bar([k for k, _ in top], [v for _, v in top], color="#2e7dd7")
        ax.set_ylabel("share of records")
        rep.figure(fig, f"languages (fastText lid.176) on {d['languages']['sampled']:,} records")

    if d.get("labels"):
        lab = d["labels"]
        rep.heading("Labels")
        rep.text(
            f"{lab['classes']} classes; the largest is {lab['imbalance_ratio']:.1f}x the smallest; "
            f"normalised entropy {lab['normalised_entropy']:.3f} (1 = perfectly balanced); "
            f"{lab['unlabelled']} records without a label."
        )
        counts = lab["counts"]
        fig, ax = plt_figure(7, max(2.5, 0.14 * len(counts)))
        names = list(counts)[::-1]
        ax.barh(names, [counts[k] for k in names], color="#2e7dd7")
        ax.tick_params(axis="y", labelsize=6 if len(names) > 30 else 9)
        ax.set_xlabel("records")
        rep.figure(fig, "records per label")

    rep.heading("Duplicates")
    rep.text(
        f"{dup['exact']['groups']:,} groups of exact copies ({dup['exact']['extra_copies']:,} "
        f"records beyond the first of each); {dup['near'].get('groups', 0):,} groups of "
        f"near-duplicates (MinHash, word 3-grams, Jaccard 0.5) among the rest."
    )
    if dup["exact"]["examples"]:
        rep.heading("Exact copies", 3)
        rep.table(dup["exact"]["examples"])
    if dup["near"].get("examples"):
        rep.heading("Near-duplicates", 3)
        rep.table(
            [
                {"size": g["size"], "ids": ", ".join(g["ids"]), "texts": " ⟷ ".join(g["texts"])}
                for g in dup["near"]["examples"]
            ]
        )

    if d.get("signals"):
        _signals(rep, d["signals"])
    if d.get("topics"):
        _topics(rep, d["topics"])
    _bias(rep, d["bias"])
    return rep


def _signals(rep: Report, s: dict[str, Any]) -> None:
    rep.heading("Signals from tamis clean")
    if s.get("clean") and s["clean"].get("counts"):
        rep.text(f"clean run: {s['clean']['counts']}")
    nums = {k: v for k, v in s["columns"].items() if v["kind"] == "number" and v.get("n")}
    flags = {k: v for k, v in s["columns"].items() if v["kind"] == "flag"}
    rep.table(
        [
            {
                "signal": k,
                "mean": v["mean"],
                "p5": float(np.quantile(v["values"], 0.05)),
                "median": v["median"],
                "p95": v["p95"],
                "max": v["max"],
                "missing": v["missing"],
            }
            for k, v in nums.items()
        ]
        + [{"signal": k, "mean": v["true"] / max(v["n"], 1)} for k, v in flags.items()]
    )
    shown = list(nums.items())[:16]
    if shown:
        cols = 4
        rows = (len(shown) + cols - 1) // cols
        fig, _ = plt_figure(11, 2.2 * rows)
        fig.clf()
        for i, (k, v) in enumerate(shown):
            ax = fig.add_subplot(rows, cols, i + 1)
            ax.hist(v["values"], bins=30, color="#2e7dd7")
            ax.set_title(k, fontsize=8)
            ax.tick_params(labelsize=7)
        fig.tight_layout()
        rep.figure(fig, "distribution of each numeric signal (thresholds decide on these)")


def _topics(rep: Report, t: dict[str, Any]) -> None:
    rep.heading("Topics")
    rep.text(
        f"{len(t['clusters'])} clusters of MiniLM embeddings (k-means) on {t['sampled']:,} "
        "records, each named by its most distinctive terms (class TF-IDF). Diversity "
        f"{t['diversity']:.3f} (mean cosine distance between random pairs); cluster entropy "
        f"{t['cluster_entropy']:.3f} (1 = records spread evenly over the clusters)."
    )
    fig, ax = plt_figure(6.5, 4.5)
    p = t["points"]
    ax.scatter(p["x"], p["y"], c=p["c"], s=4, cmap="tab20", alpha=0.7)
    for c in t["clusters"]:
        idx = [i for i, v in enumerate(p["c"]) if v == c["cluster"]]
        if idx:
            ax.annotate(
                c["name"].split(",")[0],
                (
                    float(np.mean([p["x"][i] for i in idx])),
                    float(np.mean([p["y"][i] for i in idx])),
                ),
                fontsize=7,
                weight="bold",
            )
    ax.set_xticks([])
    ax.set_yticks([])
    rep.figure(fig, "records in two dimensions (PCA of the embeddings), coloured by topic")
    rep.table(
        [
            {
                "topic": c["name"],
                "records": c["size"],
                "example": c["examples"][0]["text"] if c["examples"] else "",
            }
            for c in t["clusters"]
        ]
    )


def _bias(rep: Report, b: dict[str, Any]) -> None:
    rep.heading("Bias signals")
    rep.text(
        "Records mentioning identity groups, and the strongest co-occurrences (NPMI: 1 = only "
        f"together, 0 = independent), among pairs seen together at least {b['min_count']} times. "
        "An association is where to look, not proof of bias."
    )
    m = {k: v for k, v in b["mentions"].items() if v}
    if m:
        fig, ax = plt_figure(7, max(2.5, 0.22 * len(m)))
        names = sorted(m, key=m.get)
        ax.barh(names, [m[k] for k in names], color="#8e44ad")
        ax.set_xlabel("records mentioning the group")
        ax.tick_params(axis="y", labelsize=8)
        rep.figure(fig, "identity-group mentions")
    if b.get("labels"):
        rep.heading("Identity groups and labels", 3)
        rep.table(b["labels"])
    rep.heading("Identity groups and occupations", 3)
    rep.table(b["occupations"])
