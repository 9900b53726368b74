"""report.html for `tamis eval`: headline numbers, comparison with intervals, plots."""

from __future__ import annotations

from typing import Any

import numpy as np

from tamis.report.html import Report, plt_figure


def eval_report(result: Any, a: Any, b: Any | None) -> Report:
    m = result.model
    rep = Report(f"tamis eval: {m['name']}", f"task: {m['task']} · {m.get('n', '?')} examples")
    head = ["accuracy", "macro_f1", "perplexity", "exact_match", "contains_answer", "rouge_l"]
    rep.cards(
        {k: m[k] for k in head + ["chrf", "defect_rate"] if isinstance(m.get(k), int | float)}
    )
    if result.comparison:
        rep.heading("Model against base")
        rep.text(
            f"base: {result.base['name']}. Differences are model minus base, with a paired "
            "bootstrap 95% interval over examples; 'better' only when the interval excludes 0."
        )
        rep.table(
            [
                {
                    "metric": r["metric"],
                    "model": r["model"],
                    "base": r["base"],
                    "difference": r["diff"],
                    "95% CI": f"[{r['ci_low']:.4g}, {r['ci_high']:.4g}]",
                    "verdict": "better"
                    if r["better"]
                    else ("worse" if r["significant"] else "no clear difference"),
                }
                for r in result.comparison
            ]
        )
        rep.figure(_comparison_plot(result.comparison), "model and base, with the 95% interval")
    if m["task"] == "classification":
        _classification(rep, m)
    else:
        _generation(rep, m, a)
    if result.forgetting:
        f = result.forgetting
        rep.heading("Forgetting check")
        cls = "warn" if f["forgot"] else "ok"
        verdict = "forgot" if f["forgot"] else "within bound"
        rep.text(
            f"{f['metric']} on the general set: before {f['before']:.4g}, after {f['after']:.4g} "
            f"({f['relative_worsening']:+.1%} worse; bound {f['bound']:.0%}): {verdict}.",
            cls,
        )
    return rep


def _comparison_plot(rows: list[dict[str, Any]]) -> Any:
    fig, axes = plt_figure(min(3.0 * len(rows), 12), 3.2)
    fig.clf()
    for i, r in enumerate(rows):
        ax = fig.add_subplot(1, len(rows), i + 1)
        vals = [r["model"], r["base"]]
        err_lo = r["ci_low"]
        err_hi = r["ci_high"]
        ax.bar(["model", "base"], vals, color=["#2e7dd7", "#9aa5b1"])
        ax.errorbar([0], [r["model"]], yerr=[[max(0, -err_lo)], [max(0, err_hi)]], color="k")
        ax.set_title(r["metric"], fontsize=9)
        ax.tick_params(labelsize=8)
    fig.tight_layout()
    return fig


def _classification(rep: Report, m: dict[str, Any]) -> None:
    rep.heading("Per class")
    per = m["per_class"]
    rows = [
        {"label": k, **v}
        for k, v in sorted(per.items(), key=lambda kv: (kv[1]["support"] == 0, kv[1]["f1"]))
    ]
    rep.text("Worst first; labels with support 0 were only predicted (false positives), last.")
    rep.table(rows, ["label", "precision", "recall", "f1", "support"])
    rows = [r for r in rows if r["support"] > 0]
    labels = m["labels"]
    fig, ax = plt_figure(7, max(2.5, 0.16 * len(rows)))
    ax.barh([r["label"] for r in rows], [r["f1"] for r in rows], color="#2e7dd7")
    ax.set_xlabel("F1")
    ax.set_xlim(0, 1)
    ax.tick_params(axis="y", labelsize=6 if len(rows) > 30 else 9)
    rep.figure(fig, "F1 per class, worst first")
    cm = np.array(m["confusion"], dtype=float)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt_figure(7, 6)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(labels) <= 30:
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
    fig.colorbar(im, ax=ax, fraction=0.04)
    rep.figure(fig, "confusion matrix (rows normalised)")
    off = [
        {"true": labels[i], "predicted": labels[j], "count": int(cm[i, j])}
        for i, j in zip(*np.nonzero(cm), strict=True)
        if i != j
    ]
    rep.heading("Most frequent confusions", 3)
    rep.table(sorted(off, key=lambda r: -r["count"])[:15])


def _generation(rep: Report, m: dict[str, Any], a: Any) -> None:
    rep.heading("Per example")
    fig, ax = plt_figure(7, 3)
    per_tok = a.items["nll"] / np.maximum(a.items["count"], 1)
    ax.hist(per_tok, bins=30, color="#2e7dd7")
    ax.set_xlabel("loss per answer token")
    ax.set_ylabel("examples")
    rep.figure(fig, "held-out loss per example (the hardest examples are on the right)")
    if "rouge_l" in a.items:
        fig, ax = plt_figure(7, 3)
        ax.hist(a.items["rouge_l"], bins=20, range=(0, 1), color="#2e9d5b")
        ax.set_xlabel("ROUGE-L F")
        ax.set_ylabel("examples")
        rep.figure(fig, "ROUGE-L of the generated answers against the references")
    if "defects" in m:
        _defects(rep, m["defects"], a)
    if "judge" in m:
        j = m["judge"]
        rep.heading(f"LLM judge ({j['judge']}, {j['n']} answers)")
        rep.text(
            "G-Eval: the judge reasons, then scores 1-5. 'logprobs': probability-weighted mean "
            "over the score tokens; 'plain': the score it wrote."
        )
        rep.table(
            [
                {"criterion": c, "mean score": d["mean"], "scored": d["scored"], **d["methods"]}
                for c, d in j["criteria"].items()
            ]
        )
    if a.predictions:
        rep.heading("Examples", 3)
        rep.table(
            [
                {"reference": r[:300], "prediction": p[:300]}
                for p, r in list(zip(a.predictions, a.references, strict=True))[:10]
            ]
        )


def _defects(rep: Report, d: dict[str, Any], a: Any) -> None:
    rep.heading("Defects in the generated answers")
    rep.text(
        f"The checks of `tamis clean` ({', '.join(d['ops'])}) run on each generated answer; a "
        "finding counts when the reference answer does not have it. "
        f"{d['defect_rate']:.1%} of {d['n']} answers have one; "
        f"{d.get('at_token_limit', 0):.1%} ran to the token limit (not counted as cut off)."
    )
    if d["by_reason"]:
        rep.table([{"finding": k, "answers": v} for k, v in d["by_reason"].items()])
        rows = [
            {"finding": ", ".join(f), "prediction": p[:300]}
            for f, p in zip(a.defects, a.predictions, strict=False)
            if f
        ]
        rep.heading("Answers with findings", 3)
        rep.table(rows[:10])
