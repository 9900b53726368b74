"""Wrong calculations in worked answers: the `maths` recipe's `arithmetic` operator.

Every gsm8k answer (7,473), 30% of them with their final number changed (seeded, as
`tamis.testing` damages them for benchmarks/sft_quality.py: "48+24 = 72" becomes "48+24 = 59").
`tamis clean --recipe maths` (2 workers) against the default `sft` recipe on the same file:
recall of the changed answers, untouched answers flagged, records per second. No cleaning
library checks written arithmetic; the reference is the obvious check, one regular expression
for `a op b = c` and Python's arithmetic, on the same answers. Untouched GPTeacher answers
(code-gen, role-play) show what it flags outside maths.

Run: `python benchmarks/arithmetic.py`. Writes its table to docs/benchmarks.md.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import INSTRUCT, INSTRUCT_SETS, write_section  # noqa: E402

NAIVE = re.compile(r"(\d+(?:\.\d+)?(?:\s*[-+*/]\s*\d+(?:\.\d+)?)+)\s*=\s*(\d+(?:\.\d+)?)")


def naive_wrong(text: str) -> bool:
    """The obvious check: every `a op b = c` a regular expression finds, evaluated by Python."""
    for m in NAIVE.finditer(text):
        try:
            value = eval(m[1], {"__builtins__": {}})  # digits and + - * / only
        except (ZeroDivisionError, SyntaxError):  # 1/0, "0900-0130"
            continue
        if abs(value - float(m[2])) > 1e-6:
            return True
    return False


def main() -> None:
    import tamis
    from tamis.ops.arithmetic import check
    from tamis.records.io import write_objects
    from tamis.testing import inject_defects

    gsm = json.loads((INSTRUCT / INSTRUCT_SETS["gsm8k"]).read_text())
    damaged, truth = inject_defects(gsm, rate=0.3, seed=0, defects=["wrong_answer"])
    wrong = {o["id"] for o, t in zip(damaged, truth, strict=True) if t == "wrong_answer"}
    untouched = len(damaged) - len(wrong)
    rows, examples = [], []
    with tempfile.TemporaryDirectory() as tmp:
        src = f"{tmp}/gsm8k.jsonl"
        write_objects(damaged, src)
        for recipe in ("sft", "maths"):
            t0 = time.perf_counter()
            res = tamis.clean(src, f"{tmp}/{recipe}", recipe, workers=2, use_cache=False)
            seconds = time.perf_counter() - t0
            flagged: dict[str, str] = {}
            with open(res.files["rejected.jsonl"]) as fh:
                for line in fh:
                    row = json.loads(line)
                    for r in row["reasons"]:
                        if r["reason"] == "wrong_arithmetic":
                            flagged[row["id"]] = r["detail"]
            caught = len(flagged.keys() & wrong)
            false = sorted(flagged.keys() - wrong, key=lambda x: int(x[1:]))
            if recipe == "maths":
                examples = [flagged[i] for i in false[:8]]
            rows.append(
                f"| tamis `{recipe}` recipe | {caught / len(wrong):.3f} | "
                f"{len(false)} ({len(false) / untouched:.2%}) | {len(damaged) / seconds:,.0f} |"
            )
    t0 = time.perf_counter()
    naive = {o["id"] for o in damaged if naive_wrong(o["output"])}
    seconds = time.perf_counter() - t0
    false_naive = len(naive - wrong)
    rows.insert(
        0,
        f"| one regex + Python arithmetic (reference) | {len(naive & wrong) / len(wrong):.3f} | "
        f"{false_naive} ({false_naive / untouched:.2%}) | {len(damaged) / seconds:,.0f} (1 core, "
        "the check alone) |",
    )
    others = []
    for name in ("gpteacher-codegen", "gpteacher-roleplay"):
        objs = json.loads((INSTRUCT / INSTRUCT_SETS[name]).read_text())
        answers = [o.get("output") or o.get("response") or "" for o in objs]
        read = sum(check(a)[0] > 0 for a in answers)
        found = [w for a in answers for _, w in check(a)[1]]
        naive_n = sum(naive_wrong(a) for a in answers)
        others.append(
            f"| {name} | {len(answers):,} | {read} | {len(found)} | {naive_n} |"
            + (f" `{found[0]}` |" if found else " |")
        )
    body = "\n".join(
        [
            "## Wrong calculations (`benchmarks/arithmetic.py`)",
            "",
            f"All {len(damaged):,} gsm8k answers, {len(wrong):,} of them (30%) with the final "
            "number changed (seeded); `tamis clean` with 2 workers, records/s of the whole run.",
            "",
            "| check | recall (changed final numbers) | untouched answers flagged | records/s |",
            "|---|---:|---:|---:|",
            *rows,
            "",
            "Untouched answers the `maths` recipe flags (the first 8, as `arithmetic` reports "
            "them): " + "; ".join(f"`{e}`" for e in examples) + ".",
            "",
            "| untouched data set | answers | with a calculation read | flagged by `arithmetic` "
            "| flagged by the reference | what `arithmetic` found |",
            "|---|---:|---:|---:|---:|---|",
            *others,
        ]
    )
    print(body)
    write_section("arithmetic", body)


if __name__ == "__main__":
    main()
