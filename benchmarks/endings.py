"""Cut-off answers the rules cannot see: `heuristics` alone against `heuristics` + `endings`.

Per data set (gsm8k, GPTeacher code-gen, role-play and Toolformer), the real rows where
`endings`' default threshold was *not* chosen (it was chosen on gsm8k and code-gen rows
2,000-4,500): gsm8k, code-gen and Toolformer rows 0-2,000, all 1,923 role-play rows. A share of
them (5%, and 20% to show what happens when many answers are cut) is cut at a random word between
30% and 80% of the answer with the defects benchmark's own injector (fixed seed). One `tamis
clean` run per set and rate, with `endings` told to flag everything so that each answer's score
is in rejected.jsonl; recall on the cuts and the share of untouched answers flagged are then read
at several fixed thresholds. A second run with `endings`' defaults gives what it flags by itself:
under 0.02, or under the threshold it sets from the data set's own scores (3.5 robust deviations
under their median, at most 0.1), whichever is higher. The reference in the same run is
DataTrove's C4 end-punctuation rule on the same answers (see truncation.py).

    python benchmarks/endings.py
"""

from __future__ import annotations

import json
import random
import tempfile
import time

from _report import INSTRUCT, INSTRUCT_SETS, write_section
from truncation import c4_cuts_last_line

from tamis.ops.base import get_operator
from tamis.pipeline.recipe import Recipe
from tamis.pipeline.runner import clean
from tamis.records.io import write_objects
from tamis.testing.defects import DEFECTS

DATA = INSTRUCT
# Toolformer's answers are short (often one line of under ten words): the cuts there are short too
SETS = {
    **INSTRUCT_SETS,
    "toolformer": "../gpteacher_toolformer/toolformer-dedupe-only-dataset.json",
}
ROWS = 2000
RATES = [0.05, 0.2]
THRESHOLDS = [0.01, 0.02, 0.03, 0.05]
DEFAULT = get_operator("endings").params["max_end_prob"].default


def damaged(file: str, rate: float) -> tuple[list[dict], set[str]]:
    objs = json.loads((DATA / file).read_text())[:ROWS]
    cut_fn = DEFECTS["truncated"][0]
    rng = random.Random(0)
    out, cut = [], set()
    for i, o in enumerate(objs):
        o = {"id": f"r{i}", **o}
        if rng.random() < rate:
            c = cut_fn(dict(o), rng, [])
            if c != o:
                cut.add(o["id"])
                o = c
        out.append(o)
    return out, cut


def scores(res_dir: str) -> tuple[set[str], dict[str, float]]:
    """Ids the rules call cut, and every answer's `endings` score."""
    rules, prob = set(), {}
    with open(f"{res_dir}/rejected.jsonl") as fh:
        for line in fh:
            row = json.loads(line)
            for r in row["reasons"]:
                if r["op"] == "heuristics" and r["reason"] == "truncated":
                    rules.add(row["id"])
                elif r["op"] == "endings":
                    prob[row["id"]] = r["score"]
    return rules, prob


def main() -> None:
    recipe = Recipe.from_dict(
        {"name": "endings", "ops": [{"heuristics": {}}, {"endings": {"max_end_prob": 1.0}}]}
    )
    default = Recipe.from_dict({"name": "endings", "ops": [{"heuristics": {}}, {"endings": {}}]})
    lines = [
        "| data set | cut | answers | DataTrove C4 end punctuation: recall | untouched flagged "
        "| rules: recall | untouched flagged "
        + "".join(f"| + endings < {t:g}: recall | untouched flagged " for t in THRESHOLDS)
        + "| + endings, default: threshold | recall | untouched flagged | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|" + "---:|---:|" * len(THRESHOLDS) + "---:|" * 4,
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for name, file in SETS.items():
            for rate in RATES:
                objs, cut = damaged(file, rate)
                src = f"{tmp}/{name}.jsonl"
                write_objects(objs, src)
                t0 = time.perf_counter()
                out = f"{tmp}/{name}-{rate}"
                clean(src, out, recipe, workers=2, use_cache=False)
                seconds = time.perf_counter() - t0
                rules, prob = scores(out)
                fin = [o["id"] for o in objs if o["id"] not in cut]
                key = "output" if "output" in objs[0] else "response"
                c4 = {
                    o["id"]
                    for o, f in zip(objs, c4_cuts_last_line([o[key] for o in objs]), strict=True)
                    if f
                }
                cells = [
                    f"{rate:.0%}",
                    f"{len(objs):,}",
                    f"{len(c4 & cut) / len(cut):.3f}",
                    f"{len(c4 - cut) / len(fin):.2%}",
                    f"{len(rules & cut) / len(cut):.3f}",
                    f"{len(rules - cut) / len(fin):.2%}",
                ]
                for t in THRESHOLDS:
                    flagged = rules | {i for i, p in prob.items() if p < t}
                    cells += [
                        f"{len(flagged & cut) / len(cut):.3f}",
                        f"{len(flagged - cut) / len(fin):.2%}",
                    ]
                res = clean(src, f"{out}-default", default, workers=2, use_cache=False)
                (entry,) = [e for e in res.summary["operators"] if e["op"] == "endings"]
                flagged = rules | set(scores(f"{out}-default")[1])
                cells += [
                    f"{entry['notes']['threshold']:.3f}",
                    f"**{len(flagged & cut) / len(cut):.3f}**",
                    f"**{len(flagged - cut) / len(fin):.2%}**",
                ]
                cells.append(f"{seconds:.1f}")
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
                print(lines[-1], flush=True)
    lines += [
        "",
        f"Bold: what `endings` flags with its defaults: under `max_end_prob` ({DEFAULT:g}) or, "
        "where higher, under the threshold it reads from the data set's own scores (the column "
        "before). Seconds: the first `tamis clean` run (heuristics + endings, 2 workers). "
        "`endings` ends the `sft` and `maths` recipes.",
    ]
    table = "\n".join(lines)
    print(table)
    write_section(
        "endings",
        "## Cut-off answers: endings learnt from the data set (`benchmarks/endings.py`)\n\n"
        + table,
    )


if __name__ == "__main__":
    main()
