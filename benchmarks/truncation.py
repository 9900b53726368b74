"""Cut-off answers: the `heuristics` rules alone against rules + `truncation_lm`, on real data.

Per data set (gsm8k, GPTeacher code-gen and role-play): 300 untouched records and 300 others cut
at a random word between 30% and 80% of the answer (`tamis.testing.defects`, the defects
benchmark's own injector, fixed seed). The records come from rows 1000-1600, apart from the rows
0-1000 on which `truncation_lm`'s default threshold was chosen. One `tamis clean` run per set
computes both operators' signals; recall on the cuts and the share of untouched records flagged
are read from signals.parquet at several thresholds, without recomputing. The reference in the same
run is the end-punctuation rule of DataTrove's `C4QualityFilter` (a line must end in . ? ! " '),
the nearest an existing library comes to a cut-off check: an answer counts as flagged when the
filter removes its last line.

    python benchmarks/truncation.py [per_set]
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time

import pyarrow.parquet as pq
from _report import INSTRUCT, INSTRUCT_SETS, write_section

from tamis.ops.base import get_operator
from tamis.pipeline.recipe import Recipe
from tamis.pipeline.runner import clean
from tamis.records.io import write_objects
from tamis.testing.defects import DEFECTS

DATA, SETS = INSTRUCT, INSTRUCT_SETS
START = 1000  # rows before this were used to choose the default threshold
THRESHOLDS = [-10.0, -12.0, -14.0, -16.0]
DEFAULT = get_operator("truncation_lm").params["max_end_logprob"].default


def records(file: str, per: int) -> list[dict]:
    """`per` untouched records ("c<i>") and `per` cut ones ("t<i>"), from rows START onwards."""
    objs = json.loads((DATA / file).read_text())[START : START + 3 * per]
    cut_fn = DEFECTS["truncated"][0]
    rng = random.Random(0)
    out = [{"id": f"c{i}", **o} for i, o in enumerate(objs[:per])]
    cuts = []
    for i, o in enumerate(objs[per:]):
        c = cut_fn(dict(o), rng, [])
        if c != o:
            cuts.append({"id": f"t{i}", **c})
    return out + cuts[:per]


def c4_cuts_last_line(answers: list[str]) -> list[bool]:
    """Whether DataTrove's C4 end-punctuation rule (its other rules off) removes each answer's
    last line."""
    from datatrove.data import Document
    from datatrove.pipeline.filters import C4QualityFilter

    c4 = C4QualityFilter(
        remove_citations=False,
        min_num_sentences=-1,
        min_words_per_line=-1,
        max_word_length=-1,
        filter_lorem_ipsum=False,
        filter_javascript=False,
        filter_curly_bracket=False,
        filter_policy=False,
    )
    out = []
    for i, a in enumerate(answers):
        last = [ln.strip() for ln in a.splitlines() if ln.strip()][-1:]
        doc = Document(text=a, id=str(i))
        c4.filter(doc)
        out.append(bool(last) and not doc.text.endswith(last[0]))
    return out


def main() -> None:
    per = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    recipe = Recipe.from_dict(
        {"name": "truncation", "ops": [{"heuristics": {}}, {"truncation_lm": {}}]}
    )
    rows = []
    seconds = 0.0
    n_total = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, file in SETS.items():
            objs = records(file, per)
            src = f"{tmp}/{name}.jsonl"
            write_objects(objs, src)
            t0 = time.perf_counter()
            res = clean(src, f"{tmp}/{name}", recipe, workers=2, batch_size=50, use_cache=False)
            seconds += time.perf_counter() - t0
            n_total += len(objs)
            sig = pq.read_table(res.files["signals.parquet"]).to_pylist()
            key = "output" if "output" in objs[0] else "response"
            flags = c4_cuts_last_line([o[key] for o in objs])
            c4 = dict(zip([o["id"] for o in objs], flags, strict=True))
            rows.append((name, sig, c4))
    lines = [
        f"Per data set {per} untouched records and {per} cut at a random word (30-80% of the "
        f"answer), rows {START:,} onwards (the threshold was chosen on earlier rows); "
        f"`truncation_lm` with SmolLM2-135M-Instruct reading the last 48 answer tokens after 32 "
        f"prompt tokens: {n_total / seconds:.1f} records/s with both operators, 2 workers, CPU.",
        "",
        "| data set | DataTrove C4 end punctuation: recall | untouched flagged "
        "| rules: recall | rules: untouched flagged "
        + "".join(f"| + LM at {t:g}: recall | untouched flagged " for t in THRESHOLDS)
        + "|",
        "|---|---:|---:|---:|---:|" + "---:|---:|" * len(THRESHOLDS),
    ]
    for name, sig, c4 in rows:
        cut = [s for s in sig if s["id"].startswith("t")]
        fin = [s for s in sig if s["id"].startswith("c")]

        def rule(s: dict) -> bool:
            return (s["heuristics.truncation"] or 0.0) >= 1.0

        def lm(s: dict, t: float) -> bool:
            lp = s["truncation_lm.end_logprob"]
            return lp is not None and lp < t

        cells = [
            f"{sum(c4[s['id']] for s in cut) / len(cut):.3f}",
            f"{sum(c4[s['id']] for s in fin) / len(fin):.2%}",
            f"{sum(map(rule, cut)) / len(cut):.3f}",
            f"{sum(map(rule, fin)) / len(fin):.2%}",
        ]
        for t in THRESHOLDS:
            mark = "**" if t == DEFAULT else ""
            r = sum(rule(s) or lm(s, t) for s in cut) / len(cut)
            f = sum(rule(s) or lm(s, t) for s in fin) / len(fin)
            cells += [f"{mark}{r:.3f}{mark}", f"{mark}{f:.2%}{mark}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Bold: the default `max_end_logprob` ({DEFAULT:g}). `truncation_lm` is opt-in (a model "
        "forward pass per record); the default recipes keep the rules only.",
    ]
    table = "\n".join(lines)
    print(table)
    write_section(
        "truncation",
        "## Cut-off answers: rules and a chat LM (`benchmarks/truncation.py`)\n\n" + table,
    )


if __name__ == "__main__":
    main()
