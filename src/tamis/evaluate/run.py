"""`tamis eval`: one model (and optionally a base beside it) on held-out data.

Classification: accuracy, macro and per-class precision/recall/F1, confusion matrix.
Generation: held-out perplexity (on the tokens training trains), exact match and
contains-the-answer (the final number for gsm8k-style maths), ROUGE-L, chrF, and optionally an
LLM judge. `base`: the same evaluation of a second model, with the difference and a paired
bootstrap interval per metric. `general`: the forgetting check on a general held-out set.
Writes metrics.json, predictions.jsonl and report.html.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tamis.errors import TamisError
from tamis.evaluate import metrics as M
from tamis.evaluate.defects import DEFAULT_OPS, build_ops, generation_defects, summarise
from tamis.evaluate.predict import (
    LoadedModel,
    classify,
    generate_answers,
    load,
    perplexity,
    prompt_messages,
    token_nll,
)
from tamis.records.formats import FieldMap
from tamis.records.io import Reader
from tamis.records.model import Record
from tamis.train.data import classification_text, text_only

LOWER_IS_BETTER = {"perplexity", "defect_rate"}


@dataclass
class Scored:
    """One model's results on one data set: aggregate metrics and what a bootstrap needs."""

    task: str
    metrics: dict[str, Any]
    items: dict[str, np.ndarray] = field(default_factory=dict)
    predictions: list[Any] = field(default_factory=list)
    references: list[Any] = field(default_factory=list)
    judge: list[list[dict[str, Any]]] = field(default_factory=list)
    defects: list[list[str]] = field(default_factory=list)  # per generated answer
    at_limit: list[bool] = field(default_factory=list)  # ran to max_new_tokens

    def stat(self, name: str, idx: np.ndarray) -> float:
        """Metric `name` on the examples `idx` (for the bootstrap)."""
        if name == "perplexity":
            c = self.items["count"][idx].sum()
            return math.exp(self.items["nll"][idx].sum() / c) if c else float("nan")
        if name == "macro_f1":
            p = [self.predictions[i] for i in idx]
            r = [self.references[i] for i in idx]
            return M.macro_f1(r, p)
        return float(self.items[name][idx].mean())

    def comparable(self) -> list[str]:
        names = ["accuracy", "macro_f1"] if self.task == "classification" else ["perplexity"]
        names += [k for k in self.items if k not in ("nll", "count", "correct")]
        return names


@dataclass
class EvalResult:
    out: str
    model: dict[str, Any]
    base: dict[str, Any] | None = None
    comparison: list[dict[str, Any]] = field(default_factory=list)
    forgetting: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "base": self.base,
            "comparison": self.comparison,
            "forgetting": self.forgetting,
        }


def read_records(
    files: list[str] | str, fields: FieldMap | None = None, echo: Any = print
) -> list[Record]:
    """The records of `files`; each unreadable row is reported (file, line, why), not hidden."""
    files = [files] if isinstance(files, str) else list(files)
    reader = Reader(files, fields=fields or FieldMap())
    records = list(reader)
    for q in reader.quarantined[:20]:
        echo(f"warning: {q.source}:{q.line}: left out, unreadable: {q.error}")
    if len(reader.quarantined) > 20:
        echo(f"warning: {len(reader.quarantined) - 20} more unreadable rows left out")
    return text_only(records, "evaluation", echo)


def score(
    lm: LoadedModel,
    records: list[Record],
    *,
    generation: bool = True,
    max_new_tokens: int = 256,
    judge: Any = None,
    judge_limit: int = 20,
    defect_ops: Sequence[str] = DEFAULT_OPS,
    echo: Any = print,
) -> Scored:
    """Evaluate one loaded model on records (labelled ones for classification). Generated
    answers are also checked by the `defect_ops` operators (see `tamis.evaluate.defects`)."""
    if lm.task == "classification":
        recs = [r for r in records if r.label is not None]
        if not recs:
            raise TamisError("classification evaluation needs labelled records: none found")
        refs = [str(r.label) for r in recs]
        preds = classify(lm, recs)
        m = M.classification_metrics(refs, preds)
        correct = np.array([p == t for p, t in zip(preds, refs, strict=True)], dtype=float)
        return Scored("classification", m, {"correct": correct}, preds, refs)
    recs = [r for r in records if prompt_messages(r)[1]]
    if not recs:
        raise TamisError("generation evaluation needs records with an answer (assistant turn)")
    nll, count = token_nll(lm, recs)
    items: dict[str, np.ndarray] = {
        "nll": np.array(nll, dtype=float),
        "count": np.array(count, dtype=float),
    }
    out: dict[str, Any] = {"n": len(recs), "perplexity": perplexity(nll, count)}
    refs = [prompt_messages(r)[1] for r in recs]
    preds: list[str] = []
    judged: list[list[dict[str, Any]]] = []
    found: list[list[str]] = []
    at_limit: list[bool] = []
    if generation:
        echo(f"generating {len(recs)} answers with {lm.name}")
        preds, at_limit = generate_answers(lm, recs, max_new_tokens=max_new_tokens)
        if any(at_limit):
            echo(
                f"{sum(at_limit)} of {len(recs)} answers ran to the limit of {max_new_tokens} new "
                "tokens: their scores judge a cut answer (raise --max-new-tokens to see them whole)"
            )
        ans = [M.answer_scores(p, r) for p, r in zip(preds, refs, strict=True)]
        items["exact_match"] = np.array([a["exact_match"] for a in ans])
        items["contains_answer"] = np.array([a["contains_answer"] for a in ans])
        items["rouge_l"] = np.array(M.rouge_l(preds, refs))
        corpus_chrf, per = M.chrf(preds, refs)
        items["chrf"] = np.array(per)
        out.update({k: float(items[k].mean()) for k in ("exact_match", "contains_answer")})
        out["rouge_l"] = float(items["rouge_l"].mean())
        out["chrf"] = corpus_chrf
        if defect_ops:
            found = generation_defects(recs, preds, at_limit, defect_ops)
            items["defect_rate"] = np.array([1.0 if f else 0.0 for f in found])
            out["defect_rate"] = float(items["defect_rate"].mean())
            out["defects"] = {"ops": list(defect_ops), **summarise(found, at_limit)}
        if judge is not None:
            k = min(judge_limit, len(recs))
            echo(f"judging {k} answers with {judge.name}")
            for r, p, ref in zip(recs[:k], preds[:k], refs[:k], strict=True):
                question = "\n\n".join(m["content"] for m in prompt_messages(r)[0])
                judged.append([j.to_json() for j in judge.judge(question, p, ref)])
            out["judge"] = _judge_summary(judged, judge.name)
            for crit in judge.criteria:
                vals = [next(j["score"] for j in row if j["criterion"] == crit) for row in judged]
                if all(v is not None for v in vals) and len(vals) == len(recs):
                    items[f"judge_{crit}"] = np.array(vals, dtype=float)
    return Scored("sft", out, items, preds, refs, judged, found, at_limit)


def _judge_summary(judged: list[list[dict[str, Any]]], name: str) -> dict[str, Any]:
    per: dict[str, dict[str, Any]] = {}
    for row in judged:
        for j in row:
            d = per.setdefault(j["criterion"], {"scores": [], "methods": {}})
            if j["score"] is not None:
                d["scores"].append(j["score"])
            d["methods"][j["method"]] = d["methods"].get(j["method"], 0) + 1
    return {
        "judge": name,
        "n": len(judged),
        "criteria": {
            c: {
                "mean": float(np.mean(d["scores"])) if d["scores"] else None,
                "scored": len(d["scores"]),
                "methods": d["methods"],
            }
            for c, d in per.items()
        },
    }


def compare(a: Scored, b: Scored, resamples: int = 1000, seed: int = 0) -> list[dict[str, Any]]:
    """Model a minus model b per metric with a paired bootstrap 95% interval."""
    if len(a.references) != len(b.references) and a.task == "classification":
        raise TamisError("the two models were evaluated on different examples")
    rows = []
    for name in a.comparable():
        if name not in b.comparable():
            continue
        n = len(a.items["nll" if a.task == "sft" else "correct"])
        res = M.paired_bootstrap(
            lambda idx, name=name: (a.stat(name, idx), b.stat(name, idx)),
            n,
            resamples=resamples if name != "macro_f1" else min(resamples, 300),
            seed=seed,
        )
        better = res["diff"] < 0 if name in LOWER_IS_BETTER else res["diff"] > 0
        res.update({"metric": name, "better": bool(better and res["significant"])})
        rows.append(res)
    return rows


def forgetting_check(
    after: LoadedModel,
    before: LoadedModel,
    records: list[Record],
    max_forgetting: float = 0.1,
) -> dict[str, Any]:
    """Perplexity (generation) or accuracy (classification) on a general held-out set, before
    and after fine-tuning; flagged when it got worse by more than `max_forgetting` (relative)."""
    if after.task == "classification":
        a = score(after, records, generation=False).metrics["accuracy"]
        b = score(before, records, generation=False).metrics["accuracy"]
        change = (b - a) / b if b else 0.0
        metric = "accuracy"
    else:
        recs = [r for r in records if any(t.content for t in r.turns)]
        na, ca = token_nll(after, recs)
        nb, cb = token_nll(before, recs)
        a, b = perplexity(na, ca), perplexity(nb, cb)
        change = (a - b) / b
        metric = "perplexity"
    return {
        "metric": metric,
        "before": b,
        "after": a,
        "relative_worsening": change,
        "bound": max_forgetting,
        "forgot": bool(change > max_forgetting),
        "n": len(records),
    }


def evaluate(
    model: str,
    data: list[str] | str,
    out: str,
    *,
    base: str | None = None,
    general: list[str] | str | None = None,
    task: str | None = None,
    fields: FieldMap | None = None,
    limit: int | None = None,
    generation: bool = True,
    max_new_tokens: int = 256,
    judge: Any = None,
    judge_limit: int = 20,
    defect_ops: Sequence[str] = DEFAULT_OPS,
    max_forgetting: float = 0.1,
    resamples: int = 1000,
    seed: int = 0,
    echo: Any = print,
) -> EvalResult:
    """Evaluate `model` (a `tamis train` run folder or a model folder) on `data`; see module."""
    records = read_records(data, fields, echo)
    if limit:
        records = records[:limit]
    if not records:
        raise TamisError("the evaluation set is empty", str(data))
    if defect_ops:
        build_ops(defect_ops)  # a wrong name fails now, not after the answers are generated
    os.makedirs(out, exist_ok=True)
    lm = load(model, task)
    kw = {
        "generation": generation,
        "max_new_tokens": max_new_tokens,
        "judge": judge,
        "judge_limit": judge_limit,
        "defect_ops": defect_ops,
        "echo": echo,
    }
    a = score(lm, records, **kw)
    result = EvalResult(out, {"name": model, "task": lm.task, **a.metrics})
    b = None
    base_lm = None
    if base:
        base_lm = load(base, lm.task)
        b = score(base_lm, records, **kw)
        result.base = {"name": base, "task": lm.task, **b.metrics}
        result.comparison = compare(a, b, resamples=resamples, seed=seed)
    if general:
        if base_lm is None:
            if lm.task == "classification" or not lm.base:
                raise TamisError("the forgetting check needs the model before fine-tuning: --base")
            base_lm = load(lm.base, lm.task)
        result.forgetting = forgetting_check(
            lm, base_lm, read_records(general, fields, echo), max_forgetting
        )
        if result.forgetting["forgot"]:
            f = result.forgetting
            echo(
                f"warning: forgetting: {f['metric']} on the general set went from "
                f"{f['before']:.4g} to {f['after']:.4g} "
                f"({f['relative_worsening']:+.1%}, bound {f['bound']:.0%})"
            )
    with open(os.path.join(out, "metrics.json"), "w", encoding="utf-8") as fh:
        json.dump(result.to_json(), fh, indent=2, default=float)
    _write_predictions(os.path.join(out, "predictions.jsonl"), records, a, b, lm.task)
    from tamis.evaluate.report import eval_report

    eval_report(result, a, b).write(os.path.join(out, "report.html"))
    return result


def _write_predictions(
    path: str, records: list[Record], a: Scored, b: Scored | None, task: str
) -> None:
    if task == "classification":
        recs = [r for r in records if r.label is not None]
    else:
        recs = [r for r in records if prompt_messages(r)[1]]
    with open(path, "w", encoding="utf-8") as fh:
        for i, r in enumerate(recs):
            row: dict[str, Any] = {"id": r.id, "reference": a.references[i]}
            if task == "classification":
                row["input"] = classification_text(r)[:500]
            if a.predictions:
                row["prediction"] = a.predictions[i]
            for k, v in a.items.items():
                row[k] = float(v[i])
            if i < len(a.judge):
                row["judge"] = a.judge[i]
            if i < len(a.defects):
                row["defects"] = a.defects[i]
            if i < len(a.at_limit):
                row["at_token_limit"] = a.at_limit[i]
            if b is not None and b.predictions:
                row["base_prediction"] = b.predictions[i]
            fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
