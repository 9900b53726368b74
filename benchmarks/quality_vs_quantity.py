"""Does a small curated dataset beat a large noisy one? (classification, banking77)

A stratified slice of the banking77 train set (by default up to 39 per intent: 2,999 rows;
`--per-class 20` gives 1,540, the size of a first hand-labelled data set) is made noisy with a
fixed seed: 20% of labels flipped uniformly, 10% extra near-duplicate rows, 5% extra junk rows
(empty, off-language, AI boilerplate), all by `tamis.testing.defects.corrupt_classification`.
Arms, each a full fine-tune of the offline MiniLM through `tamis train` (mean pooling, encoder lr
5e-5, head lr 1e-3, batch 32) for the same number of optimiser steps (by default 2 epochs of the
raw data: equal compute, so a smaller clean set is seen more often), evaluated through `tamis
eval` on the untouched banking77 test set (3,080 rows):

- raw: the noisy data as it is;
- curated: `tamis clean` with the classification recipe plus `label_issues: drop`
  (`--label-issues relabel`: confident suggestions relabelled, the other flags dropped; recorded
  in its own section);
- random: a random subset of raw the size of curated;
- ceiling: the slice before corruption (what perfect cleaning could reach);
- perfect drop (`--with-perfect-drop`): the noisy data without exactly the rows the corruption
  flipped or added (what a cleaning that can only drop rows could reach at best: a flipped row's
  true label is lost with it).

Run: `python benchmarks/quality_vs_quantity.py [--seeds 0 1 2] [--per-class 39] [--epochs 2]
[--label-issues drop|relabel] [--with-perfect-drop] [--section NAME]`. On a machine with a CUDA
GPU, `tamis train` uses it (bf16), and the GPU is named in the section's header.
Resumable: finished (arm, seed) runs are reused from the work folder. Each setting (rows per
intent, epochs) has its own section in docs/benchmarks.md, so a larger slice can be recorded
beside the default one.
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "banking77"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--per-class", type=int, default=39)
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--test-limit", type=int, default=None)
    ap.add_argument("--work", default=None, help="default: out/bench-qvq-<per-class>x<epochs>")
    ap.add_argument("--no-doc", action="store_true")
    ap.add_argument(
        "--section",
        default=None,
        help="docs/benchmarks.md section name (default: quality_vs_quantity_<per-class>x<epochs>)",
    )
    ap.add_argument(
        "--label-issues",
        choices=["drop", "relabel"],
        default="drop",
        help="what the curated arm does with wrong labels (relabel: confident ones fixed)",
    )
    ap.add_argument(
        "--label-rank",
        choices=["embeddings", "training"],
        default="embeddings",
        help="how label_issues chooses its flags (training: a MiniLM fine-tune's AUM)",
    )
    ap.add_argument(
        "--with-perfect-drop",
        action="store_true",
        help="also train on the noisy rows minus exactly the injected ones (drop-only's best)",
    )
    a = ap.parse_args()

    from tamis.experiment import ExperimentConfig, run_experiment
    from tamis.ops.labels import LabelIssuesOp
    from tamis.testing.defects import corrupt_classification

    setting = f"{a.per_class}x{a.epochs:g}" + ("_relabel" if a.label_issues == "relabel" else "")
    setting += "_training" if a.label_rank == "training" else ""
    work = Path(a.work or ROOT / "out" / f"bench-qvq-{setting}")
    work.mkdir(parents=True, exist_ok=True)
    with open(DATA / "train.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    by: dict[str, list[dict]] = collections.defaultdict(list)
    for r in rows:
        by[r["category"]].append(r)
    rng = random.Random(0)
    clean_rows = [r for c in sorted(by) for r in rng.sample(by[c], min(a.per_class, len(by[c])))]
    noisy, truth = corrupt_classification(clean_rows, seed=0)
    (work / "clean.jsonl").write_text("".join(json.dumps(r) + "\n" for r in clean_rows))
    (work / "noisy.jsonl").write_text("".join(json.dumps(r) + "\n" for r in noisy))
    extra = [{"name": "ceiling", "data": str(work / "clean.jsonl")}]
    if a.with_perfect_drop:
        untouched = [r for r, t in zip(noisy, truth, strict=True) if t is None]
        (work / "perfect_drop.jsonl").write_text("".join(json.dumps(r) + "\n" for r in untouched))
        extra.append({"name": "perfect_drop", "data": str(work / "perfect_drop.jsonl")})
    steps = int(a.epochs * -(-len(noisy) // 32))  # the raw arm's epochs, for every arm
    cfg = ExperimentConfig.from_dict(
        {
            "task": "classification",
            "train": [str(work / "noisy.jsonl")],
            "test": [str(DATA / "test.csv")],
            "recipe": "classification",
            "label_issues": a.label_issues,
            "label_rank": a.label_rank,
            "arms": ["raw", "curated", "random"],
            "extra_arms": extra,
            "seeds": a.seeds,
            "metric": "accuracy",
            "training": {
                "max_steps": steps,
                "batch_size": 32,
                "learning_rate": 5e-5,
                "head_learning_rate": 1e-3,
                "pooling": "mean",
                "lora": False,
                "max_length": 64,
            },
            "evaluation": {"limit": a.test_limit} if a.test_limit else {},
        }
    )
    res = run_experiment(cfg, str(work / "experiment"), echo=print)
    kept = {
        json.loads(x)["id"]
        for x in (work / "experiment" / "clean" / "curated" / "kept.jsonl").read_text().splitlines()
    }
    caught = collections.Counter()
    total = collections.Counter()
    for r, t in zip(noisy, truth, strict=True):
        total[t or "clean"] += 1
        caught[t or "clean"] += r["id"] not in kept
    arms = {x["arm"]: x for x in res.arms}

    def cell(arm: str, metric: str) -> str:
        s = arms[arm]["summary"][metric]
        return f"{s['mean']:.3f} ± {s['std']:.3f}"

    lines = [
        "| arm | training rows | accuracy | macro F1 | seconds to train (mean) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in ("raw", "curated", "random", "ceiling", "perfect_drop"):
        if name not in arms:
            continue
        x = arms[name]
        secs = sum(r["train_seconds"] for r in x["runs"]) / len(x["runs"])
        lines.append(
            f"| {name.replace('_', ' ')} | {x['n_train']:,} | {cell(name, 'accuracy')} "
            f"| {cell(name, 'macro_f1')} | {secs:.0f} |"
        )
    acc = {k: arms[k]["summary"]["accuracy"]["mean"] for k in arms}
    # training time summed over runs, so a resumed run reports what the runs took, not the resume
    minutes = sum(r["train_seconds"] for x in arms.values() for r in x["runs"]) / 60

    def paired(arm: str, other: str) -> list[float]:
        """Accuracy points `arm` gains over `other`, seed by seed."""
        base = {r["seed"]: r["metrics"]["accuracy"] for r in arms[other]["runs"]}
        return [100 * (r["metrics"]["accuracy"] - base[r["seed"]]) for r in arms[arm]["runs"]]

    eps = 1e-9  # accuracies are counts over the test set: 154/3080 is 5 points, not 4.999...
    checks = [
        ("curated ≥ raw + 5 points", acc["curated"] - acc["raw"] >= 0.05 - eps),
        ("curated within 2 points of the ceiling", acc["ceiling"] - acc["curated"] <= 0.02 + eps),
        ("curated > random of the same size", acc["curated"] > acc["random"]),
    ]
    relabelled = ""
    if a.label_issues == "relabel":
        fixes = [
            json.loads(x)
            for x in (work / "experiment" / "clean" / "curated" / "changes.jsonl")
            .read_text()
            .splitlines()
        ]
        fixes = [c for c in fixes if c["fix"] == "relabel"]
        by_id = {r["id"]: t for r, t in zip(noisy, truth, strict=True)}
        true_label = {r["text"]: r["category"] for r in clean_rows}
        original = {r["id"]: true_label.get(r["text"]) for r in noisy}
        right = sum(
            1 for c in fixes if by_id[c["id"]] == "flipped" and c["after"] == original[c["id"]]
        )
        made_wrong = sum(1 for c in fixes if by_id[c["id"]] is None)
        relabelled = (
            " Relabelled instead of dropped (suggested label at least "
            f"{LabelIssuesOp.params['relabel_confidence'].default:g} likely): {len(fixes)} "
            f"kept rows, of them {right} flipped rows given back their true label and "
            f"{made_wrong} clean rows given a wrong one."
        )
    removed = ", ".join(
        f"{k} {caught[k]}/{total[k]}"
        for k in ("flipped", "near_duplicate", "empty", "off_language", "boilerplate", "clean")
    )
    whole = len(clean_rows) == len(rows)
    size = "the whole train set" if whole else f"up to {a.per_class} per intent"
    body = (
        "`benchmarks/quality_vs_quantity.py`: banking77, "
        f"{len(clean_rows):,} real rows ({size}) made noisy with a "
        "fixed seed (20% labels flipped, +10% near-duplicates, +5% junk: empty, off-language, "
        "boilerplate); "
        "full MiniLM fine-tune through `tamis train` (mean pooling, encoder lr 5e-5, head lr 1e-3, "
        f"batch 32, {steps} steps for every arm = {a.epochs:g} epoch{'' if a.epochs == 1 else 's'} "
        "of raw), scored by "
        "`tamis eval` on the untouched banking77 test "
        f"set ({'all 3,080' if not a.test_limit else a.test_limit} rows); mean ± std over seeds "
        f"{a.seeds}. Training, all runs together: {minutes:.0f} min on this machine.\n\n"
        + "\n".join(lines)
        + "\n\nWhat `tamis clean` (classification recipe + `label_issues: "
        + f"{{action: {a.label_issues}, rank: {a.label_rank}}}`) "
        f"removed, by injected kind: {removed}.{relabelled}\n\n"
        + "\n".join(f"- {name}: {'yes' if ok else '**no**'}" for name, ok in checks)
        + f"\n- accuracy gain of curated over raw: {100 * (acc['curated'] - acc['raw']):+.2f} "
        f"points; gap to the ceiling: {100 * (acc['ceiling'] - acc['curated']):.2f} points."
        + "\n- gain of curated over raw per seed (same seed, same test rows): "
        + ", ".join(f"{g:+.1f}" for g in paired("curated", "raw"))
        + " points; over random of the same size: "
        + ", ".join(f"{g:+.1f}" for g in paired("curated", "random"))
        + " points."
        + (
            f"\n- perfect drop (the noisy rows minus exactly the injected ones) against raw: "
            f"{100 * (acc['perfect_drop'] - acc['raw']):+.2f} points; curated against it: "
            f"{100 * (acc['curated'] - acc['perfect_drop']):+.2f} points."
            if "perfect_drop" in arms
            else ""
        )
    )
    print(body)
    if not a.no_doc:
        write_section(a.section or f"quality_vs_quantity_{setting}", body)


if __name__ == "__main__":
    main()
