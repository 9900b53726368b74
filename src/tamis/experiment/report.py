"""report.html for `tamis experiment`: the table, metric against training size, learning curves."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from tamis.report.html import Report, plt_figure

COLORS = {"raw": "#c0392b", "curated": "#2e9d5b", "random": "#7f8c8d", "growth": "#2e7dd7"}


def table_rows(res: Any) -> list[dict[str, Any]]:
    """One row per arm: size, the main metric's mean and spread over seeds, other metrics."""
    rows = []
    for a in res.arms:
        s = a["summary"]
        row: dict[str, Any] = {"arm": a["arm"], "records": a["n_train"], "seeds": len(a["seeds"])}
        main = s.get(res.metric)
        row[res.metric] = main["mean"] if main else float("nan")
        row["± std"] = main["std"] if main else float("nan")
        for k in ("macro_f1", "accuracy", "perplexity", "exact_match", "rouge_l"):
            if k != res.metric and k in s:
                row[k] = s[k]["mean"]
        rows.append(row)
    return rows


def experiment_report(res: Any, out: str) -> Report:
    rep = Report(
        "tamis experiment",
        f"metric: {res.metric} on the held-out set; mean over seeds (± sample std)",
    )
    rows = table_rows(res)
    rep.table(rows)
    rep.figure(_bars(res), f"{res.metric} per arm (mean, error bar: min-max over seeds)")
    rep.figure(_size_curve(res), f"{res.metric} against training size")
    curves = _learning_curves(res, out)
    if curves is not None:
        rep.figure(curves, "training loss per step (first seed of each arm, smoothed)")
    rep.heading("Runs")
    rep.table(
        [
            {
                "arm": a["arm"],
                "seed": r["seed"],
                "records": r["n_train"],
                res.metric: r["metrics"].get(res.metric, float("nan")),
                "train seconds": r.get("train_seconds", float("nan")),
            }
            for a in res.arms
            for r in a["runs"]
        ]
    )
    return rep


def _color(a: dict[str, Any]) -> str:
    return COLORS.get(a["kind"], "#8e44ad")


def _bars(res: Any) -> Any:
    fig, ax = plt_figure(max(5, 0.9 * len(res.arms)), 3.4)
    names, means, lo, hi, colors = [], [], [], [], []
    for a in res.arms:
        s = a["summary"].get(res.metric)
        if not s:
            continue
        names.append(a["arm"])
        means.append(s["mean"])
        lo.append(s["mean"] - s["min"])
        hi.append(s["max"] - s["mean"])
        colors.append(_color(a))
    ax.bar(names, means, color=colors, yerr=[lo, hi], capsize=4)
    if means:
        span = max(means) - min(means)
        ax.set_ylim(max(0.0, min(means) - 2 * span - 0.02), max(means) + span + 0.02)
    ax.set_ylabel(res.metric)
    ax.tick_params(axis="x", rotation=30)
    return fig


def _size_curve(res: Any) -> Any:
    fig, ax = plt_figure(6.5, 3.6)
    growth = sorted((a for a in res.arms if a["kind"] == "growth"), key=lambda a: a["n_train"])
    if growth:
        xs = [a["n_train"] for a in growth]
        ys = [a["summary"][res.metric]["mean"] for a in growth if res.metric in a["summary"]]
        err = [a["summary"][res.metric]["std"] for a in growth if res.metric in a["summary"]]
        ax.errorbar(xs[: len(ys)], ys, yerr=err, marker="o", color=COLORS["growth"], label="growth")
    for a in res.arms:
        if a["kind"] == "growth" or res.metric not in a["summary"]:
            continue
        s = a["summary"][res.metric]
        ax.errorbar(
            [a["n_train"]],
            [s["mean"]],
            yerr=[s["std"]],
            marker="s",
            ls="none",
            color=_color(a),
            label=a["arm"],
            markersize=8,
            capsize=3,
        )
    ax.set_xscale("log")
    ax.set_xlabel("training records")
    ax.set_ylabel(res.metric)
    ax.legend(fontsize=8)
    return fig


def _learning_curves(res: Any, out: str) -> Any:
    fig, ax = plt_figure(6.5, 3.6)
    drawn = 0
    for a in res.arms:
        if not a["seeds"]:
            continue
        path = os.path.join(out, "runs", a["arm"], f"seed-{a['seeds'][0]}", "monitor.json")
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as fh:
            steps = [s for s in json.load(fh).get("steps", []) if s.get("loss") is not None]
        if not steps:
            continue
        x = np.array([s["step"] for s in steps])
        y = np.array([s["loss"] for s in steps], dtype=float)
        k = max(1, len(y) // 30)
        if k > 1:
            y = np.convolve(y, np.ones(k) / k, mode="valid")
            x = x[k - 1 :]
        ax.plot(x, y, color=_color(a), alpha=0.9 if a["kind"] != "growth" else 0.5, label=a["arm"])
        drawn += 1
    if not drawn:
        import matplotlib.pyplot as plt

        plt.close(fig)
        return None
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.legend(fontsize=7, ncol=2)
    return fig
