"""Off-language recall and false drops of the `language` operator, on real text.

No multilingual instruction data set is at hand offline, so the off-language records are made of
real human translations: the gettext catalogues of the software installed on this machine
(`tamis.testing.defects.system_translations`, Debian's /usr/share/locale): per language, records
whose instruction and answer are three messages of that language. The English side is the real
gsm8k and GPTeacher (code-gen, role-play) records. One `tamis clean` run computes the language
signals once; recall and false drops at several `min_score` thresholds are then read from
signals.parquet without recomputing (the reason signals are stored apart from decisions).

    python benchmarks/off_language.py [per_language]
"""

from __future__ import annotations

import csv
import json
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
from _report import write_section

from tamis.ops.base import get_operator
from tamis.pipeline.recipe import Recipe
from tamis.pipeline.runner import clean
from tamis.records.io import write_objects
from tamis.testing.defects import off_language_records, system_translations

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
DATA = SHARED / "instruct"
BANKING = SHARED / "banking77" / "test.csv"
TWEETS = SHARED / "tweeteval" / "sentiment" / "test_text.txt"
ENGLISH = ["gsm_8k_train.json", "gpteacher_codegen_instruct.json", "gpteacher_roleplay.json"]
THRESHOLDS = [0.95, 0.9, 0.8, 0.65, 0.5, 0.4, 0.3, 0.0]
_SFT = next(op["language"] for op in Recipe.load("sft").to_dict()["ops"] if "language" in op)
DEFAULT = _SFT.get("min_score", get_operator("language").params["min_score"].default)


def main() -> None:
    per = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    translations = system_translations()
    foreign = off_language_records(translations, per, seed=0)
    if not foreign:
        raise SystemExit("no gettext catalogues on this machine: nothing to measure")
    english = []
    for name in ENGLISH:
        for i, o in enumerate(json.loads((DATA / name).read_text())[:1000]):
            english.append({"id": f"{name.split('.')[0]}:{i}", **o})
    # short English texts (intents, tweets): where language id is least sure of itself
    with open(BANKING, encoding="utf-8") as fh:
        short = [
            {"id": f"banking77:{i}", "text": row["text"], "label": row["category"]}
            for i, row in enumerate(csv.DictReader(fh))
            if i < 1000
        ]
    tweets = TWEETS.read_text(encoding="utf-8").splitlines()[:1000]
    short += [{"id": f"tweeteval:{i}", "text": t, "label": 0} for i, t in enumerate(tweets)]
    recipe = Recipe.from_dict({"name": "language-only", "ops": [{"language": {}}]})
    sig = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, objs in (("mix", english + foreign), ("short", short)):
            src = f"{tmp}/{name}.jsonl"
            write_objects(objs, src)
            res = clean(src, f"{tmp}/{name}", recipe, workers=2, use_cache=False)
            sig += pq.read_table(res.files["signals.parquet"]).to_pylist()
    by_id = {r["id"]: (r["language.lang"], r["language.lang_score"] or 0.0) for r in sig}
    langs = sorted({o["id"].split(":")[0] for o in foreign})

    def dropped(rid: str, t: float) -> bool:
        lang, score = by_id[rid]
        return lang is not None and lang != "en" and score >= t

    lines = [
        f"{len(foreign):,} off-language records ({per} in each of {len(langs)} languages with "
        f"enough messages), {len(english):,} English records (gsm8k, GPTeacher code-gen and "
        "role-play, 1,000 each); `language` operator, fastText lid.176 (`lite`).",
        "",
        "| min_score | off-language recall | languages with recall ≥ 0.95 | English SFT dropped "
        "| short English dropped |",
        "|---:|---:|---:|---:|---:|",
    ]
    for t in THRESHOLDS:
        hits = [dropped(o["id"], t) for o in foreign]
        per_lang = {
            lang: sum(
                h for o, h in zip(foreign, hits, strict=True) if o["id"].startswith(lang + ":")
            )
            / per
            for lang in langs
        }
        good = sum(r >= 0.95 for r in per_lang.values())
        fd = sum(dropped(o["id"], t) for o in english)
        fs = sum(dropped(o["id"], t) for o in short)
        default = " (default)" if t == DEFAULT else ""
        lines.append(
            f"| {t}{default} | {sum(hits) / len(hits):.3f} | {good} / {len(langs)} | "
            f"{fd} ({fd / len(english):.2%}) | {fs} ({fs / len(short):.2%}) |"
        )
    t0 = DEFAULT
    worst = sorted(langs, key=lambda lg: sum(dropped(f"{lg}:{n}", t0) for n in range(per)))[:10]
    lines += [
        "",
        "Lowest recall at the default threshold (language: recall; what lid.176 said most often):",
        "",
        "| language | recall | most frequent answer |",
        "|---|---:|---|",
    ]
    for lg in worst:
        said = [by_id[f"{lg}:{n}"][0] for n in range(per)]
        common = max(set(said), key=said.count)
        rec = sum(dropped(f"{lg}:{n}", t0) for n in range(per)) / per
        lines.append(f"| {lg} | {rec:.2f} | {common} |")
    table = "\n".join(lines)
    print(table)
    write_section(
        "off_language", "## Off-language recall (`benchmarks/off_language.py`)\n\n" + table
    )


if __name__ == "__main__":
    main()
