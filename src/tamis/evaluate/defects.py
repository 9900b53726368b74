"""Defects in what a model generates, found by the same checks `tamis clean` runs on data.

A fine-tune learns its data's defects along with the task: answers that stop mid-sentence, carry
a second `Instruction:` block, refuse, loop or stay empty. Exact match cannot see that (a model
that solves nothing solves nothing either way); these checks can. Each generated answer is put in
place of its reference answer and the per-record operators (`structure`, `heuristics`, and any
others named) run on it. A finding counts only when the same record with its reference answer does
not have it, so what the prompt triggers (a short instruction, a link the model cannot see) and the
reference's own quirks are not put on the model. An answer stopped by the token limit is not
called cut off: the cut is the evaluator's (it is counted apart as `at_token_limit`).
"""

from __future__ import annotations

import copy
import dataclasses
from collections import Counter
from collections.abc import Sequence
from typing import Any

from tamis.errors import RecipeError
from tamis.ops.base import Operator, get_operator
from tamis.records.model import Record

DEFAULT_OPS: tuple[str, ...] = ("structure", "heuristics")


def _with_answer(r: Record, answer: str) -> Record:
    """A copy of `r` whose last assistant turn says `answer`, as if the input had held it (a
    check that reads the input's own text, `Record.original`, reads the answer too)."""
    turns = [copy.copy(t) for t in r.turns]
    last = max(i for i, t in enumerate(turns) if t.role == "assistant")
    turns[last].content = answer
    out = dataclasses.replace(r, turns=turns, meta=dict(r.meta))
    out.raw = out.to_raw()
    return out


def _findings(ops: list[Operator], records: list[Record]) -> list[set[str]]:
    out: list[set[str]] = [set() for _ in records]
    for op in ops:
        sigs = op.compute(records)
        for i, (r, s) in enumerate(zip(records, sigs, strict=True)):
            out[i].update(f"{x.op}/{x.reason}" for x in op.decide(r, s))
    return out


def build_ops(names: Sequence[str] = DEFAULT_OPS) -> list[Operator]:
    """The operators named (per-record filters only: a cross-record one needs a data set)."""
    ops = []
    for name in names:
        op = get_operator(name)()
        if not op.is_filter or op.is_cross:
            raise RecipeError(f"'{name}' is not a per-record check: it cannot judge one answer")
        op.setup()
        ops.append(op)
    return ops


def generation_defects(
    records: list[Record],
    answers: list[str],
    at_limit: Sequence[bool] | None = None,
    ops: Sequence[str] = DEFAULT_OPS,
) -> list[list[str]]:
    """Per record, the findings (`op/reason`) its generated answer has and its reference lacks."""
    built = build_ops(ops)
    at_limit = at_limit or [False] * len(records)
    ref = _findings(built, records)
    gen = _findings(built, [_with_answer(r, a) for r, a in zip(records, answers, strict=True)])
    out = []
    for g, f, cut in zip(gen, ref, at_limit, strict=True):
        new = g - f
        if cut:
            new = {x for x in new if not x.endswith("/truncated")}
        out.append(sorted(new))
    return out


def summarise(found: list[list[str]], at_limit: Sequence[bool] | None = None) -> dict[str, Any]:
    """Share of answers with any new finding, and counts by finding."""
    n = len(found)
    by = Counter(x for f in found for x in f)
    out: dict[str, Any] = {
        "n": n,
        "defect_rate": sum(1 for f in found if f) / n if n else 0.0,
        "by_reason": dict(by.most_common()),
    }
    if at_limit is not None:
        out["at_token_limit"] = sum(bool(x) for x in at_limit) / n if n else 0.0
    return out
