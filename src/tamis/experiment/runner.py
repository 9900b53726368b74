"""Run an experiment: prepare each arm's training file, then train and evaluate every
(arm, seed) with the same model, budget and held-out set. Finished runs are not redone."""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tamis.errors import TamisError
from tamis.experiment.config import ExperimentConfig
from tamis.records.formats import FieldMap
from tamis.records.io import Reader, write


@dataclass
class Arm:
    name: str
    kind: str  # raw, curated, random, growth, extra
    file: str
    n: int
    fraction: float | None = None


@dataclass
class ExperimentResult:
    out: str
    metric: str
    arms: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "arms": self.arms}


def _fields(cfg: ExperimentConfig) -> FieldMap:
    return FieldMap(label_field=cfg.label_field, text_field=cfg.text_field)


def _write(records: list[Any], path: str) -> int:
    tmp = path + ".tmp"
    n = write(records, tmp)
    os.replace(tmp, path)
    return n


def _count(path: str, cfg: ExperimentConfig) -> int:
    return sum(1 for _ in Reader([path], fields=_fields(cfg)))


def prepare_arms(cfg: ExperimentConfig, out: str, echo: Any = print) -> list[Arm]:
    """Write each arm's training file under OUT/data (once: reused when already there)."""
    from tamis.pipeline.recipe import Recipe, recipe_for_format
    from tamis.pipeline.runner import clean

    data = os.path.join(out, "data")
    os.makedirs(data, exist_ok=True)
    from tamis.evaluate.run import read_records

    raw = read_records(cfg.train, _fields(cfg), echo)  # unreadable rows named, then left out
    if not raw:
        raise TamisError("the raw training data is empty", cfg.train[0])
    arms: list[Arm] = []
    raw_file = os.path.join(data, "raw.jsonl")
    if not os.path.exists(raw_file):
        _write(raw, raw_file)
    if "raw" in cfg.arms:
        arms.append(Arm("raw", "raw", raw_file, len(raw)))

    def cleaned(name: str, recipe: str | None) -> str:
        folder = os.path.join(out, "clean", name)
        kept = os.path.join(folder, "kept.jsonl")
        if not os.path.exists(os.path.join(folder, "summary.json")):
            echo(f"cleaning the raw data for arm {name}")
            if recipe is None:
                fmt = Reader([raw_file], fields=_fields(cfg)).first_format()
                recipe = recipe_for_format(fmt) if fmt else "text"
            rec = Recipe.load(recipe)
            if cfg.task == "classification" and cfg.label_issues not in (None, "none"):
                step = {"action": cfg.label_issues, "rank": cfg.label_rank}
                rec = rec.with_step("label_issues", step)
            clean([raw_file], folder, rec, fields=_fields(cfg), workers=cfg.workers)
        return kept

    need_curated = {"curated", "random"} & set(cfg.arms) or cfg.growth
    curated_file = cleaned("curated", cfg.recipe) if need_curated else None
    n_cur = _count(curated_file, cfg) if curated_file else 0
    if curated_file and not n_cur:
        raise TamisError("the curated arm is empty: the recipe dropped every record")
    if "curated" in cfg.arms and curated_file:
        arms.append(Arm("curated", "curated", curated_file, n_cur))
    if "random" in cfg.arms:
        path = os.path.join(data, "random.jsonl")
        if not os.path.exists(path):
            idx = sorted(random.Random(12345).sample(range(len(raw)), n_cur))
            _write([raw[i] for i in idx], path)
        arms.append(Arm("random", "random", path, n_cur))
    if cfg.growth and curated_file:
        cur = list(Reader([curated_file], fields=_fields(cfg)))
        order = list(range(len(cur)))
        random.Random(54321).shuffle(order)  # nested subsets: each step adds to the last
        for g in sorted(float(x) for x in cfg.growth):
            k = max(1, round(g * len(cur)))
            path = os.path.join(data, f"growth-{g:g}.jsonl")
            if not os.path.exists(path):
                _write([cur[i] for i in sorted(order[:k])], path)
            arms.append(Arm(f"growth-{g:g}", "growth", path, k, g))
    for extra in cfg.extra_arms:
        name = str(extra["name"])
        if extra.get("data"):
            files = extra["data"] if isinstance(extra["data"], list) else [extra["data"]]
            path = os.path.join(data, f"{name}.jsonl")
            if not os.path.exists(path):
                _write(list(Reader(files, fields=_fields(cfg))), path)
        else:
            path = cleaned(name, extra["recipe"])
        arms.append(Arm(name, "extra", path, _count(path, cfg)))
    return arms


def run_experiment(
    cfg: ExperimentConfig, out: str, *, echo: Any = print, only: list[str] | None = None
) -> ExperimentResult:
    """Prepare the arms, then train and evaluate each (arm, seed) not already done."""
    from tamis.evaluate.predict import load
    from tamis.evaluate.run import read_records, score
    from tamis.train import TrainConfig
    from tamis.train import train as train_run

    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "experiment.json"), "w", encoding="utf-8") as fh:
        json.dump(cfg.to_dict(), fh, indent=2)
    arms = prepare_arms(cfg, out, echo)
    if only:
        arms = [a for a in arms if a.name in only]
    test = read_records(cfg.test, _fields(cfg), echo)
    if cfg.eval_args.get("limit"):
        test = test[: int(cfg.eval_args["limit"])]
    results: list[dict[str, Any]] = []
    total = len(arms) * len(cfg.seeds)
    done = 0
    for arm in arms:
        runs = []
        for seed in cfg.seeds:
            done += 1
            run_dir = os.path.join(out, "runs", arm.name, f"seed-{seed}")
            result_file = os.path.join(run_dir, "eval.json")
            if os.path.exists(result_file):
                with open(result_file, encoding="utf-8") as fh:
                    runs.append(json.load(fh))
                echo(f"[{done}/{total}] {arm.name} seed {seed}: done before, reused")
                continue
            echo(f"[{done}/{total}] {arm.name} seed {seed}: training on {arm.n} records")
            t0 = time.perf_counter()
            tcfg = TrainConfig(
                task=cfg.task,
                model=cfg.model,
                train_file=[arm.file],
                output=run_dir,
                label_field=cfg.label_field,
                text_field=cfg.text_field,
                seed=int(seed),
                report_to=["none"],
                keep_checkpoints=False,  # runs are resumed whole: their checkpoints are dead weight
            )
            for k, v in cfg.train_args.items():
                if not hasattr(tcfg, k) or k in ("train_file", "output", "seed", "task"):
                    raise TamisError(f"training: unknown or reserved key {k!r}")
                setattr(tcfg, k, v)
            train_run(tcfg, echo=lambda *_a, **_k: None)
            train_s = time.perf_counter() - t0
            lm = load(run_dir)
            sc = score(
                lm,
                test,
                generation=bool(cfg.eval_args.get("generation", True)),
                max_new_tokens=int(cfg.eval_args.get("max_new_tokens", 128)),
                echo=lambda *_a, **_k: None,
            )
            metrics = {k: v for k, v in sc.metrics.items() if isinstance(v, int | float)}
            row = {
                "arm": arm.name,
                "seed": seed,
                "n_train": arm.n,
                "metrics": metrics,
                "train_seconds": round(train_s, 1),
            }
            if sc.metrics.get("defects"):  # what the defect check found in its answers, by kind
                row["defects"] = sc.metrics["defects"]
            with open(result_file, "w", encoding="utf-8") as fh:
                json.dump(row, fh, indent=2)
            del lm
            runs.append(row)
            echo(f"    {cfg.main_metric} = {metrics.get(cfg.main_metric, float('nan')):.4f}")
        results.append(_summarise(arm, runs))
    res = ExperimentResult(out, cfg.main_metric, results)
    with open(os.path.join(out, "results.json"), "w", encoding="utf-8") as fh:
        json.dump(res.to_json(), fh, indent=2)
    from tamis.experiment.report import experiment_report

    experiment_report(res, out).write(os.path.join(out, "report.html"))
    return res


def _summarise(arm: Arm, runs: list[dict[str, Any]]) -> dict[str, Any]:
    names = sorted({k for r in runs for k in r["metrics"]})
    summary = {}
    for k in names:
        vals = np.array([r["metrics"][k] for r in runs if k in r["metrics"]], dtype=float)
        summary[k] = {
            "mean": float(vals.mean()),
            "std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0,
            "min": float(vals.min()),
            "max": float(vals.max()),
        }
    return {
        "arm": arm.name,
        "kind": arm.kind,
        "n_train": arm.n,
        "fraction": arm.fraction,
        "file": arm.file,
        "seeds": [r["seed"] for r in runs],
        "summary": summary,
        "runs": runs,
    }
