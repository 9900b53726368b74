"""Recall per injected defect type and false drops on untouched records.

Real records (gsm8k, GPTeacher code-gen / role-play / Toolformer) are copied and 30% of them
damaged, one defect each, round-robin over `tamis.testing.DEFECTS` (fixed seed). `tamis clean` runs
with the default recipe, or the one named by `--recipe`; a defect counts as found when its record
carries the expected reason (or, for the fixes, the expected logged change; a cut answer counts as
found by any operator's `truncated`: `heuristics`, `endings` or `truncation_lm`). Writes its table
to docs/benchmarks.md (section `defects`, or `defects_<recipe>` for another recipe; `_all` added
for `--per-set 0`).

    python benchmarks/defects.py [--per-set 2000 | --per-set 0] [--recipe sft-thorough]
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
from collections import Counter

from _report import INSTRUCT, INSTRUCT_SETS, write_section
from scipy.stats import binomtest

from tamis.pipeline.recipe import Recipe
from tamis.pipeline.runner import clean
from tamis.records.io import write_objects
from tamis.testing import DEFECTS, inject_defects

DATA = INSTRUCT
# Toolformer's answers are one short line that ends in a tool call: its cuts are short and plain
SETS = {
    **INSTRUCT_SETS,
    "toolformer": "../gpteacher_toolformer/toolformer-dedupe-only-dataset.json",
}


DEDUP = {"exact_dedup/duplicate", "minhash_dedup/near_duplicate"}
# the rows on which `endings`' default thresholds were chosen (benchmarks/endings.py measures the
# rest): cuts found there are not a fair measure, so the every-record run counts them apart
TUNED = {"gsm8k": range(2000, 4500), "gpteacher-codegen": range(2000, 4500)}
# a cut right after a sentence's final punctuation reads as a finished answer to any check of the
# text's end: it bounds what rules on the last words can find
SENTENCE_END = re.compile(r"[.!?][\"')\]]*\s*$")


def source_duplicates(objs: list[dict], tmp: str) -> set[str]:
    """Ids ("r<i>") of records that already have a (near-)duplicate in the undamaged data: real
    data sets hold some, and dropping them is a finding, not a false drop. Clusters change with
    the records around them (one damaged member can bring two untouched ones together), so a
    record dropped as the copy of an untouched record counts as the data's own duplicate too."""
    src = f"{tmp}/source.jsonl"
    write_objects([{"id": f"r{i}", **o} for i, o in enumerate(objs)], src)
    recipe = Recipe.from_dict(
        {"name": "dedup", "ops": [{"exact_dedup": {}}, {"minhash_dedup": {}}]}
    )
    res = clean(src, f"{tmp}/source", recipe, workers=2)
    found: set[str] = set()
    with open(res.files["clusters.jsonl"]) as fh:
        for line in fh:
            found.update(m["id"] for m in json.loads(line)["members"])
    return found


def wilson(k: int, n: int) -> tuple[float, float]:
    """The 95% Wilson score interval of a recall of k in n (scipy): with about 140 cuts of a type
    per run, a recall of 0.92 is known only to within a few points, which the table should say."""
    if not n:
        return float("nan"), float("nan")
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return ci.low, ci.high


def expected(label: str, got: set[str]) -> bool:
    """Whether a damaged record carries its defect's expected finding."""
    want = DEFECTS[label][1]
    if want.endswith("/truncated"):  # three operators find cut answers, each under its own name
        return any(g.endswith("/truncated") and not g.startswith("change:") for g in got)
    return want in got


def run(
    name: str, file: str, n: int, seed: int, recipe: Recipe | None = None
) -> tuple[Counter, Counter, int, int, int, int, Counter]:
    objs = json.loads((DATA / file).read_text())
    objs = objs[:n] if n else objs
    damaged, truth = inject_defects(objs, rate=0.3, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        in_source = source_duplicates(objs, tmp)
        src = f"{tmp}/{name}.jsonl"
        write_objects(damaged, src)
        res = clean(src, f"{tmp}/out", recipe, workers=2)
        found: dict[str, set[str]] = {}
        dup_of: dict[str, set[str]] = {}  # the records a dropped duplicate was found to copy
        with open(res.files["rejected.jsonl"]) as fh:
            for line in fh:
                row = json.loads(line)
                found[row["id"]] = {f"{r['op']}/{r['reason']}" for r in row["reasons"]}
                dup_of[row["id"]] = {
                    r["duplicate_of"] for r in row["reasons"] if "duplicate_of" in r
                }
        with open(res.files["changes.jsonl"]) as fh:
            for line in fh:
                c = json.loads(line)
                found.setdefault(c["id"], set()).update(
                    {f"change:{c['op']}", f"change:{c['op']}/{c['fix']}"}
                )
    untouched = {obj["id"] for obj, label in zip(damaged, truth, strict=True) if label is None}
    injected, hit = Counter(), Counter()
    tuned = Counter()  # cut answers on TUNED rows: "cuts" and "found"
    clean_n = false_drops = source_dups = sentence_cuts = 0
    for row, (obj, label) in enumerate(zip(damaged, truth, strict=True)):
        got = found.get(obj["id"], set())
        if label is None:
            clean_n += 1
            drops = {g for g in got if not g.startswith("change:")}
            own = obj["id"] in in_source or dup_of.get(obj["id"], {""}) <= untouched
            if drops and drops <= DEDUP and own:
                source_dups += 1  # a duplicate the real data already had
            elif drops:
                false_drops += 1
            continue
        injected[label] += 1
        hit[label] += expected(label, got)
        if label == "truncated":
            answer = obj.get("output", obj.get("response", ""))
            sentence_cuts += bool(SENTENCE_END.search(answer))
            if row in TUNED.get(name, ()):
                tuned["cuts"] += 1
                tuned["found"] += expected(label, got)
    return injected, hit, clean_n, false_drops, source_dups, sentence_cuts, tuned


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--per-set", type=int, default=2000, help="records per data set (0: every record)"
    )
    ap.add_argument("--recipe", help="a built-in recipe or YAML file (default: the format's)")
    args = ap.parse_args()
    n = args.per_set
    recipe = Recipe.load(args.recipe) if args.recipe else None
    injected, hit = Counter(), Counter()
    rows = []
    sentence_cuts = 0
    tuned = Counter()
    for i, (name, file) in enumerate(SETS.items()):
        inj, h, clean_n, fd, dups, cuts, t = run(name, file, n, seed=i, recipe=recipe)
        sentence_cuts += cuts
        tuned.update(t)
        injected.update(inj)
        hit.update(h)
        rows.append(
            f"| {name} | {sum(inj.values())} | {h['truncated']} of {inj['truncated']} | {clean_n} "
            f"| {dups} | {fd} | {fd / clean_n:.2%} |"
        )
    lines = [
        f"{f'Recipe `{recipe.name}`' if recipe else 'Default recipe'}; "
        f"{f'{n} records per set' if n else 'every record of each set'}, "
        "30% damaged (one defect each, fixed seeds). 95% interval: Wilson score interval of the "
        "recall.",
        "",
        "| defect | expected finding | injected | found | recall | 95% interval |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name in DEFECTS:
        r = hit[name] / injected[name] if injected[name] else float("nan")
        want = DEFECTS[name][1]
        if want.endswith("/truncated"):  # `heuristics` or `endings` (or `truncation_lm`)
            want = "*/truncated"
        lo, hi = wilson(hit[name], injected[name])
        lines.append(
            f"| {name} | `{want}` | {injected[name]} | {hit[name]} | {r:.3f} | {lo:.3f}-{hi:.3f} |"
        )
    lines += [
        "",
        f"Of the {injected['truncated']} cut answers, {sentence_cuts} stop right after a "
        "sentence's final punctuation and read as finished to any check of the last words. "
        "`benchmarks/endings.py` (about 2,000 answers a set) and `benchmarks/truncation.py` "
        "measure the cut-off checks on more cuts, the opt-in ones included.",
        "",
    ]
    if tuned["cuts"]:
        rest, found = injected["truncated"] - tuned["cuts"], hit["truncated"] - tuned["found"]
        lo, hi = wilson(found, rest)
        lines += [
            f"On the rows where `endings`' default thresholds were chosen (gsm8k and code-gen rows "
            f"2,000-4,499) it finds {tuned['found']} of {tuned['cuts']} cut answers; on the "
            f"others {found} of {rest} ({found / rest:.3f}, {lo:.3f}-{hi:.3f}), the fairer "
            "measure.",
            "",
        ]
    lines += [
        "| data set | damaged | cut answers found | untouched | dropped as duplicates the data "
        "already had | other untouched dropped | false-drop rate |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "Real data sets hold duplicates of their own (GPTeacher code-gen asks for the factorial in "
        "C++ several times): an untouched record dropped only by exact or near dedup, whose "
        "cluster already exists in the undamaged data or whose kept copy is untouched too, is "
        "counted apart; the false-drop rate counts the rest (a record dropped as the copy of a "
        "damaged one counts as a false drop).",
    ]
    table = "\n".join(lines)
    print(table)
    on, flag = ("", "") if n else (" on every record", " --per-set 0")
    if recipe is None:
        section, title = "defects", f"## Defect recall{on} (`benchmarks/defects.py{flag}`)"
    else:
        section = f"defects_{recipe.name}"
        title = (
            f"## Defect recall{on}, recipe `{recipe.name}` (`benchmarks/defects.py{flag} --recipe`)"
        )
    if not n:  # every record: its own section, beside the 2,000-a-set runs
        section += "_all"
    write_section(section, f"{title}\n\n{table}")


if __name__ == "__main__":
    main()
