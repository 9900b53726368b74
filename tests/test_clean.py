"""`tamis clean` / `tamis check` end to end on real data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import tamis
from conftest import DATA, ROOT
from tamis.cli.main import app
from tamis.pipeline.recipe import BUILTIN, Recipe
from tamis.records.io import write_objects
from tamis.testing import inject_defects

runner = CliRunner()
OUTS = ("kept.jsonl", "rejected.jsonl", "quarantine.jsonl", "changes.jsonl", "signals.parquet")


def _rows(path: Path) -> list[dict]:
    """The objects of a JSONL file. Lines end at "\n" only: `str.splitlines` also splits at
    U+2028, which gsm8k holds raw inside strings (valid JSON, written as is)."""
    return [json.loads(x) for x in path.read_text(encoding="utf-8").split("\n") if x]


def _same_outputs(a: Path, b: Path) -> None:
    for name in OUTS:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    sa, sb = (json.loads((p / "summary.json").read_text()) for p in (a, b))
    sa.pop("timings"), sb.pop("timings")
    assert sa == sb


def test_banking77_exact_duplicates_and_invariant(tmp_path: Path) -> None:
    res = tamis.clean(str(DATA / "banking77" / "train.csv"), str(tmp_path), workers=1)
    c = res.counts
    assert c["input"] == 10003 == c["kept"] + c["rejected"] + c["quarantined"]
    rejected = _rows(tmp_path / "rejected.jsonl")
    dups = [r for r in rejected if r["reasons"][0]["reason"] == "duplicate"]
    assert len(dups) == 4  # the data set's README: 4 exact duplicates in train
    kept_texts = {" ".join(o["text"].lower().split()) for o in _rows(tmp_path / "kept.jsonl")}
    for d in dups:
        assert d["reasons"][0]["duplicate_of"].startswith("train.csv:")
        # the first copy is kept (normalised: whitespace fixed)
        assert " ".join(d["record"]["text"].lower().split()) in kept_texts
    assert len(_rows(tmp_path / "kept.jsonl")) == c["kept"]


def test_injected_defects_are_rejected_with_reasons(tmp_path: Path, gsm8k) -> None:
    objs, truth = inject_defects(gsm8k[:400], rate=0.3, seed=3)
    src = tmp_path / "in.jsonl"
    write_objects(objs, str(src))
    res = tamis.clean(str(src), str(tmp_path / "out"), workers=1)
    c = res.counts
    assert c["input"] == 400 == c["kept"] + c["rejected"] + c["quarantined"]
    rejected = {r["id"]: r for r in _rows(tmp_path / "out" / "rejected.jsonl")}
    by_id = dict(zip((o["id"] for o in objs), truth, strict=True))
    for rid, row in rejected.items():
        assert row["reasons"] and all("op" in r and "reason" in r for r in row["reasons"])
        assert row["record"] == objs[int(rid[1:])]  # the original record, untouched
    found = {rid for rid in rejected if by_id[rid] == "placeholder_answer"}
    assert found == {rid for rid, t in by_id.items() if t == "placeholder_answer"}
    false = [rid for rid in rejected if by_id[rid] is None]
    assert len(false) <= 3  # at most 1% of the 280 untouched records
    changes = _rows(tmp_path / "out" / "changes.jsonl")
    pii_ids = {x["id"] for x in changes if x["op"] == "pii"}
    assert pii_ids == {rid for rid, t in by_id.items() if t == "pii"}
    redacted = next(x for x in changes if x["op"] == "pii")
    assert "[" in redacted["after"] and redacted["before"] != redacted["after"]


def test_injected_defects_are_there_where_the_ground_truth_says() -> None:
    """A record labelled damaged differs from its original; a labelled cut removes words.

    GPTeacher's code set has short scripts of fewer than 6 space-separated words: they cannot be
    cut, and were once counted as cut answers that tamis "missed" (r1025 and r1072 at seed 1).
    """
    code = json.loads((DATA / "instruct" / "gpteacher_codegen_instruct.json").read_text())[:2000]
    damaged, truth = inject_defects(code, rate=0.3, seed=1)
    assert truth[1025] is None and truth[1072] is None
    assert damaged[1072]["response"] == code[1072]["response"] == "#!/bin/bash\n\nls -lSh"
    cuts = 0
    for d, o, t in zip(damaged, code, truth, strict=True):
        d = {k: v for k, v in d.items() if k != "id"}
        assert (d != o) == (t is not None)
        if t == "truncated":
            cuts += 1
            cut, full = d["response"].rstrip(), o["response"].rstrip()
            assert full.startswith(cut) and len(full.split()) > len(cut.split())
    assert cuts >= 30
    # trailing spaces are not words: a cut among them would leave the whole answer
    text = "one two three four five six seven eight" + " " * 40
    for seed in range(20):
        out = inject_defects([{"instruction": "q", "output": text}], 1.0, seed, ["truncated"])[0]
        assert len(out[0]["output"].split()) < 8


def test_deterministic_across_runs_and_worker_counts(tmp_path: Path, gsm8k) -> None:
    objs, _ = inject_defects(gsm8k[:300], rate=0.3, seed=5)
    src = tmp_path / "in.jsonl"
    write_objects(objs, str(src))
    tamis.clean(str(src), str(tmp_path / "a"), workers=1, batch_size=64)
    tamis.clean(str(src), str(tmp_path / "b"), workers=2, batch_size=64)
    _same_outputs(tmp_path / "a", tmp_path / "b")


@pytest.mark.parametrize("slow", ["helper", "main", None])
def test_outputs_written_on_two_cores_are_the_same_bytes(
    tmp_path: Path, gsm8k, monkeypatch, slow
) -> None:
    """Pass 2 splits the batches between this process and a forked helper, each taking the next
    from its end: the files must be those one process writes, with duplicates (cross-record
    reasons) in both shares, whichever process is held up by its other job (so that it writes
    few batches or many)."""
    import time

    from tamis.pipeline import runner

    def held(job):
        return lambda: time.sleep(0.5) or job()

    objs, truth = inject_defects(gsm8k[:600], rate=0.3, seed=7)
    dup_at = [i for i, t in enumerate(truth) if t == "exact_duplicate"]
    assert min(dup_at) < 300 < max(dup_at)
    src = tmp_path / "in.jsonl"
    write_objects(objs, str(src))
    tamis.clean(str(src), str(tmp_path / "one"), workers=1, batch_size=50)
    calls = []
    two = runner._write_in_two

    def write_in_two(work, batch_records, decisions, ids, paths, before, first, fixes):
        calls.append(1)
        before = held(before) if slow == "helper" else before
        first = held(first) if slow == "main" else first
        return two(work, batch_records, decisions, ids, paths, before, first, fixes)

    monkeypatch.setattr(runner, "_write_in_two", write_in_two)
    tamis.clean(str(src), str(tmp_path / "two"), workers=2, batch_size=50)
    assert calls == [1]
    _same_outputs(tmp_path / "one", tmp_path / "two")
    clusters = [(tmp_path / d / "clusters.jsonl").read_bytes() for d in ("one", "two")]
    assert clusters[0] == clusters[1]
    # the signals' kept column (made apart from kept.jsonl on this path) says the same
    import pyarrow.parquet as pq

    sig = pq.read_table(tmp_path / "two" / "signals.parquet", columns=["id", "kept"]).to_pylist()
    kept = {str(r["id"]) for r in _rows(tmp_path / "two" / "kept.jsonl")}
    rejected = {str(r["id"]) for r in _rows(tmp_path / "two" / "rejected.jsonl")}
    assert {r["id"] for r in sig if r["kept"]} == kept
    assert {r["id"] for r in sig if not r["kept"]} == rejected
    assert len(sig) == len(kept) + len(rejected) == 600


def test_a_failed_two_core_write_says_so_and_leaves_no_parts(
    tmp_path: Path, gsm8k, monkeypatch
) -> None:
    """The forked helper fails (here: on its half of the batches): the run stops with the
    helper's error, and no half-written part files stay behind."""
    from tamis.errors import TamisError
    from tamis.pipeline import runner

    src = tmp_path / "in.jsonl"
    write_objects(gsm8k[:300], str(src))
    write = runner._write_batches

    def helper_fails(work, batches, pos0, *rest):
        if pos0 == 0:
            raise OSError("disk full")
        return write(work, batches, pos0, *rest)

    monkeypatch.setattr(runner, "_write_batches", helper_fails)
    with pytest.raises(TamisError, match="OSError: disk full"):
        tamis.clean(str(src), str(tmp_path / "out"), workers=2, batch_size=50)
    assert not list((tmp_path / "out").glob("*.part"))
    assert not (tmp_path / "out" / "kept.jsonl").exists()


def test_changing_a_threshold_reuses_cached_signals(tmp_path: Path, gsm_file: Path) -> None:
    cache = tmp_path / "cache"
    first = tamis.clean(str(gsm_file), str(tmp_path / "a"), cache_dir=str(cache))
    assert first.summary["timings"]["signal_cache"]["misses"] == 2 * 200  # language + offensive
    recipe = Recipe.load("sft")
    recipe.steps = [
        (n, {**p, "threshold": 0.5} if n == "offensive" else p, o) for n, p, o in recipe.steps
    ]
    second = tamis.clean(str(gsm_file), str(tmp_path / "b"), recipe, cache_dir=str(cache))
    assert second.summary["timings"]["signal_cache"] == {
        "hits": 2 * 200,
        "misses": 0,
        "path": str(cache),
    }


def test_resume_after_kill_gives_identical_outputs(tmp_path: Path, gsm8k) -> None:
    src = tmp_path / "in.jsonl"
    write_objects(gsm8k[:3000], str(src))
    args = [str(src), "-w", "1", "--batch-size", "100", "-q", "--no-cache"]
    tamis_cmd = [sys.executable, "-m", "tamis.cli.main", "clean"]
    subprocess.run([*tamis_cmd, *args, "-o", str(tmp_path / "full")], check=True)

    out = tmp_path / "killed"
    proc = subprocess.Popen([*tamis_cmd, *args, "-o", str(out)])
    work = out / ".work"
    deadline = time.time() + 60
    while time.time() < deadline:
        if work.exists() and len(list(work.glob("*.pkl"))) >= 5:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    spilled = len(list(work.glob("*.pkl")))
    assert 5 <= spilled < 30, "the run should have been killed part way"
    assert not (out / "kept.jsonl").exists()
    subprocess.run([*tamis_cmd, *args, "-o", str(out), "--resume"], check=True)
    _same_outputs(tmp_path / "full", out)


def test_check_exit_codes(tmp_path: Path, gsm_file: Path) -> None:
    sample = str(ROOT / "examples" / "data" / "gsm8k_sample.jsonl")
    res = runner.invoke(app, ["check", sample, "-w", "1"])
    assert res.exit_code == 1 and "heuristics/placeholder_answer" in res.output
    res = runner.invoke(app, ["check", sample, "-w", "1", "--fail-over", "0.5", "--json"])
    assert res.exit_code == 0
    report = json.loads(res.output)
    assert report["input"] == 300 and 0 < report["findings_total"] <= 150
    assert report["findings"]["structure/missing_field"]["examples"][0]["id"].startswith("r")
    clean_part = tmp_path / "clean.jsonl"
    clean_part.write_text("".join(gsm_file.read_text().splitlines(True)[:20]))
    assert runner.invoke(app, ["check", str(clean_part), "-w", "1"]).exit_code == 0
    assert runner.invoke(app, ["check", str(tmp_path / "nope.jsonl")]).exit_code == 2


def test_check_examples_show_what_the_finding_is_about(tmp_path: Path, gsm8k) -> None:
    """An example shows the end of a cut answer, the prompt and the answer for the rest, whose
    copy a duplicate is, a label; and text in [brackets] prints as written (rich read it as
    markup and swallowed it)."""
    rows = [dict(o) for o in gsm8k[:40]]
    cut = rows[5]["output"].split(" ")
    rows[5]["output"] = " ".join(cut[: len(cut) // 2]) + " of the"
    rows[6].update(instruction="[label: Q7] " + rows[6]["instruction"], output="N/A")
    rows[7] = dict(rows[8])
    src = tmp_path / "g.jsonl"
    src.write_text("".join(json.dumps(o) + "\n" for o in rows))
    res = runner.invoke(app, ["check", str(src), "-w", "1", "--json"])
    found = {k: v["examples"][0]["text"] for k, v in json.loads(res.output)["findings"].items()}
    tail = " ".join(rows[5]["output"].split())[-60:]
    assert found["heuristics/truncated"].startswith("… ") and found[
        "heuristics/truncated"
    ].endswith(tail)
    assert found["heuristics/placeholder_answer"].startswith("[label: Q7] ")
    assert found["heuristics/placeholder_answer"].endswith(" ⇒ N/A")
    assert found["exact_dedup/duplicate"].startswith("copy of g.jsonl:8: ")
    table = runner.invoke(app, ["check", str(src), "-w", "1"]).output
    assert "[label: Q7]" in table and "N/A" in table  # (rich may wrap "⇒ N/A")


def test_cli_clean_prints_summary_and_json(tmp_path: Path, gsm_file: Path) -> None:
    res = runner.invoke(app, ["clean", str(gsm_file), "-o", str(tmp_path / "o"), "-w", "1"])
    assert res.exit_code == 0, res.output
    assert "input 200 = kept" in res.output
    res = runner.invoke(app, ["clean", str(gsm_file), "-o", str(tmp_path / "o"), "--json"])
    assert json.loads(res.output)["counts"]["input"] == 200
    for name in (*OUTS, "summary.json"):
        assert (tmp_path / "o" / name).exists()


def test_ops_lists_every_operator_with_parameters() -> None:
    res = runner.invoke(app, ["ops", "--json"])
    ops = json.loads(res.output)
    assert set(ops) >= {
        "normalize",
        "structure",
        "heuristics",
        "language",
        "offensive",
        "pii",
        "exact_dedup",
    }
    assert ops["heuristics"]["params"]["max_symbol_ratio"]["default"] == 0.6
    assert "truncated" in ops["heuristics"]["reasons"]
    assert runner.invoke(app, ["--help"]).exit_code == 0


def _rule_blind_cuts(objs: list[dict], max_words: int = 10**9) -> tuple[list[dict], set[str]]:
    """Every tenth answer cut at a random word (the defects injector, seed 0) where no
    `heuristics` rule sees the cut and under `max_words` words are left; the ids of those."""
    import random

    from tamis.ops.heuristics import _truncation
    from tamis.testing.defects import _truncated

    rng = random.Random(0)
    rows, cut = [], set()
    for i, o in enumerate(objs):
        o = {"id": f"r{i}", **o}
        if i % 10 == 0:
            c = _truncated(dict(o), rng, [])
            text = c["output"]
            if text != o["output"] and len(text.split()) < max_words and _truncation(text) < 1.0:
                cut.add(o["id"])
                o = c
        rows.append(o)
    return rows, cut


def test_endings_learns_what_finished_answers_look_like(tmp_path: Path, gsm8k) -> None:
    """gsm8k answers cut at a random word that pass every `heuristics` rule: `endings`, learnt from
    the data set's own answers, scores them far under finished answers and flags some of them and
    few finished ones (benchmarks/endings.py has the recall), the same on every run; with too few
    answers to learn from it says so and flags nothing."""
    import statistics

    rows, cut = _rule_blind_cuts(gsm8k[:2000])
    assert len(cut) >= 30
    src = tmp_path / "gsm.jsonl"
    write_objects(rows, str(src))
    everything = Recipe.from_dict({"name": "e", "ops": [{"endings": {"max_end_prob": 1.0}}]})
    res = tamis.clean(str(src), str(tmp_path / "all"), everything, workers=2)
    score = {r["id"]: r["reasons"][0]["score"] for r in _rows(tmp_path / "all" / "rejected.jsonl")}
    fin = [p for i, p in score.items() if i not in cut]
    cuts = [score[i] for i in cut if i in score]  # answers under 3 words are not scored
    assert len(cuts) >= 25
    assert statistics.median(cuts) < statistics.median(fin) / 2
    (entry,) = res.summary["operators"]
    assert entry["notes"]["learnt_from"] == len(score)
    recipe = Recipe.from_dict({"name": "e", "ops": [{"endings": {}}]})
    res = tamis.clean(str(src), str(tmp_path / "a"), recipe, workers=2)
    flagged = {r["id"] for r in _rows(tmp_path / "a" / "rejected.jsonl")}
    assert flagged & cut
    assert len(flagged - cut) / (len(rows) - len(cut)) <= 0.01
    c = res.summary["counts"]
    assert c["input"] == c["kept"] + c["rejected"] + c["quarantined"]
    tamis.clean(str(src), str(tmp_path / "b"), recipe, workers=1)
    _same_outputs(tmp_path / "a", tmp_path / "b")
    few = tmp_path / "few.jsonl"
    write_objects(rows[:80], str(few))
    res = tamis.clean(str(few), str(tmp_path / "c"), recipe)
    assert res.summary["operators"][0]["notes"]["skipped"] == "too few answers"
    assert res.summary["counts"]["rejected"] == 0


def test_endings_flags_short_cut_answers(tmp_path: Path) -> None:
    """Toolformer's answers are one short line ("The square root of 729 is calc('sqrt(729)')."):
    cut at a random word they are three to five words long and pass every rule ("The square
    root"). `endings` by default learns from and scores answers of three words or more, so it finds
    most of them; told to skip answers under six words, as it once did, it finds none."""
    path = DATA / "gpteacher_toolformer" / "toolformer-dedupe-only-dataset.json"
    rows, cut = _rule_blind_cuts(json.loads(path.read_text())[:1500], max_words=6)
    assert len(cut) >= 25
    src = tmp_path / "toolformer.jsonl"
    write_objects(rows, str(src))
    flagged = {}
    for name, params in (("default", {}), ("six", {"min_words": 6})):
        recipe = Recipe.from_dict({"name": "e", "ops": [{"endings": params}]})
        tamis.clean(str(src), str(tmp_path / name), recipe, workers=2)
        flagged[name] = {r["id"] for r in _rows(tmp_path / name / "rejected.jsonl")}
    assert len(flagged["default"] & cut) >= len(cut) / 2
    assert len(flagged["default"] - cut) <= 0.01 * (len(rows) - len(cut))
    assert not flagged["six"] & cut


def _fixed_and_own_threshold(tmp_path: Path, rows: int, gsm8k: list[dict]) -> dict[str, dict]:
    """`endings` on the first `rows` Toolformer and gsm8k rows, every tenth answer cut where no
    rule sees it: with its defaults and with the fixed threshold alone (`min_end_z: 0`). Per set:
    the cuts found, the finished answers flagged and the notes of each run, and the counts."""
    path = DATA / "gpteacher_toolformer" / "toolformer-dedupe-only-dataset.json"
    sets = {"toolformer": json.loads(path.read_text())[:rows], "gsm8k": gsm8k[:rows]}
    out: dict[str, dict] = {}
    for name, objs in sets.items():
        data, cut = _rule_blind_cuts(objs)
        src = tmp_path / f"{name}.jsonl"
        write_objects(data, str(src))
        got = out[name] = {"cuts": len(cut), "finished": len(data) - len(cut)}
        for run, params in (("fixed", {"min_end_z": 0}), ("default", {})):
            recipe = Recipe.from_dict({"name": "e", "ops": [{"endings": params}]})
            res = tamis.clean(str(src), str(tmp_path / f"{name}-{run}"), recipe, workers=2)
            flagged = {r["id"] for r in _rows(tmp_path / f"{name}-{run}" / "rejected.jsonl")}
            got[run] = (
                len(flagged & cut),
                len(flagged - cut),
                res.summary["operators"][0]["notes"],
            )
    return out


def test_endings_reads_whether_the_earlier_lines_end(tmp_path: Path, gsm8k) -> None:
    """An author who ends every line of an answer with a full stop but not the last one has most
    likely been cut; one who never does has not. `endings` sees the pair (the earlier lines' ends,
    the last line's end), which a linear model over each alone cannot form: on gsm8k rows 0-6,000
    in three data sets, every tenth answer cut where no rule sees it, it finds 43 of the 107 cuts
    and flags 4 of the 5,893 finished answers, against 36 and 8 without that pair."""
    from tamis.ops.endings import _line_ends

    assert _line_ends("So 2+2=4.\nShe has 4 apples") == "a0"
    assert _line_ends("So 2+2=4.\nShe has 4 apples.") == "a1"
    assert _line_ends('He said "go."\nSo 2+2=4\nShe has 4 apples.') == "m1"
    assert _line_ends("So 2+2=4\n\nShe has 4") == "z0"
    assert _line_ends("She has 4 apples") == "-0"
    found = wrong = cuts = 0
    for start in (0, 2000, 4000):
        rows, cut = _rule_blind_cuts(gsm8k[start : start + 2000])
        src = tmp_path / f"gsm{start}.jsonl"
        write_objects(rows, str(src))
        recipe = Recipe.from_dict({"name": "e", "ops": [{"endings": {}}]})
        tamis.clean(str(src), str(tmp_path / f"out{start}"), recipe, workers=2)
        flagged = {r["id"] for r in _rows(tmp_path / f"out{start}" / "rejected.jsonl")}
        found, wrong, cuts = found + len(flagged & cut), wrong + len(flagged - cut), cuts + len(cut)
    assert cuts == 107
    assert found >= 41 and wrong <= 5, (found, wrong)


def test_endings_learns_from_a_few_hundred_answers(tmp_path: Path, gsm8k) -> None:
    """A first hand-made data set holds a few hundred answers. From 100 on, `endings` learns from
    them: its probabilities are milder with fewer answers to learn from, but the threshold it
    reads from the data set's own scores follows them. On 300 Toolformer rows it finds 10 of the
    12 cuts no rule sees (1 with the fixed 0.02 alone); on 300 gsm8k rows it flags no finished
    answer."""
    got = _fixed_and_own_threshold(tmp_path, 300, gsm8k)
    for name, runs in got.items():
        for run in ("fixed", "default"):
            found, wrong, notes = runs[run]
            assert "skipped" not in notes and wrong == 0, (name, run)
    tool = got["toolformer"]
    assert tool["default"][0] >= 0.75 * tool["cuts"] and tool["fixed"][0] <= 0.25 * tool["cuts"]


def test_endings_sees_a_tool_call_missing(tmp_path: Path) -> None:
    """Every finished Toolformer answer holds its tool call ("The capital of Germany is:
    wikipedia('Capital of Germany')"); a cut before the call ("The capital of Germany") ends in
    plain words that also end many a sentence. `endings` learns the answer's shape too (its
    length, whether it holds a call), so it finds most such cuts the rules cannot see: without
    those two features it found 0.59 of them on these rows."""
    path = DATA / "gpteacher_toolformer" / "toolformer-dedupe-only-dataset.json"
    rows, cut = _rule_blind_cuts(json.loads(path.read_text())[:2000])
    assert len(cut) >= 80
    src = tmp_path / "toolformer.jsonl"
    write_objects(rows, str(src))
    recipe = Recipe.from_dict({"name": "e", "ops": [{"endings": {}}]})
    tamis.clean(str(src), str(tmp_path / "out"), recipe, workers=2)
    flagged = {r["id"] for r in _rows(tmp_path / "out" / "rejected.jsonl")}
    assert len(flagged & cut) >= 0.75 * len(cut)
    assert len(flagged - cut) <= 0.005 * (len(rows) - len(cut))


def test_endings_sets_its_threshold_from_the_data_set(tmp_path: Path, gsm8k) -> None:
    """Finished Toolformer answers all end with a tool call and score far above its cuts, so a
    fixed 0.02 leaves cuts that score 0.02 to 0.1. `endings` also flags what lies 3.5 robust
    deviations under the data set's median score (at most 0.1): on Toolformer that raises its
    threshold to 0.1 and finds 81 of its 82 rule-blind cuts against 76 (70 before `endings` also
    read whether the earlier lines end in a full stop), for 1 of 1,918 finished answers against 0;
    on gsm8k, whose scores overlap, 3.5 deviations lie near 0.02 and the threshold stays close
    to it (0.0237: one cut and one finished answer more than at 0.02; it stayed 0.02 before the
    earlier lines' ends were read)."""
    got = _fixed_and_own_threshold(tmp_path, 2000, gsm8k)
    for runs in got.values():
        assert runs["fixed"][2]["threshold"] == 0.02
    tool, gsm = got["toolformer"], got["gsm8k"]
    assert tool["default"][2]["threshold"] == 0.1
    assert tool["default"][0] >= max(tool["fixed"][0] + 4, 0.97 * tool["cuts"]), tool
    assert tool["default"][1] <= 0.002 * tool["finished"], tool
    assert 0.02 <= gsm["default"][2]["threshold"] <= 0.03, gsm
    assert gsm["default"][0] >= gsm["fixed"][0] and gsm["default"][1] <= gsm["fixed"][1] + 1, gsm


def test_endings_learns_again_without_the_cuts_it_found(tmp_path: Path) -> None:
    """Cuts the rules miss are among the answers `endings` learns from, and teach it that answers
    end there. A second round learns again without the answers the first scored as cut: on 2,000
    Toolformer answers, a fifth of them cut at a random word, it finds 357 cuts against 336, with
    2 finished answers flagged in either (202 against 178 and none with the fixed 0.02 threshold
    it had before it read one from the data set); learning from every second answer only (the
    others scored by the last round's models), 339 against 326."""
    import random

    from tamis.testing.defects import DEFECTS

    path = DATA / "gpteacher_toolformer" / "toolformer-dedupe-only-dataset.json"
    rng = random.Random(0)
    rows, cut = [], set()
    for i, o in enumerate(json.loads(path.read_text())[:2000]):
        o = {"id": f"r{i}", **o}
        if rng.random() < 0.2:
            c = DEFECTS["truncated"][0](dict(o), rng, [])
            if c != o:
                cut.add(o["id"])
                o = c
        rows.append(o)
    src = tmp_path / "toolformer.jsonl"
    write_objects(rows, str(src))
    found, wrong, notes = {}, {}, {}
    # "half": learns from every second answer; the others are scored by the last round's models
    half = {"train_answers": 1000}
    runs = (("1", {"rounds": 1}), ("2", {}), ("half 1", {**half, "rounds": 1}), ("half 2", half))
    for name, params in runs:
        recipe = Recipe.from_dict({"name": "e", "ops": [{"heuristics": {}}, {"endings": params}]})
        res = tamis.clean(str(src), str(tmp_path / name), recipe)
        notes[name] = res.summary["operators"][1]["notes"]
        flagged = {
            r["id"]
            for r in _rows(tmp_path / name / "rejected.jsonl")
            if any(x["op"] == "endings" for x in r["reasons"])
        }
        found[name], wrong[name] = len(flagged & cut), len(flagged - cut)
    assert found["2"] >= found["1"] + 15, found
    assert wrong["2"] <= wrong["1"], wrong
    assert notes["2"]["last_round_learnt_from"] < notes["2"]["learnt_from"]
    assert found["half 2"] > found["half 1"] and wrong["half 2"] <= wrong["half 1"], (found, wrong)


def test_endings_sees_a_question_number_unused(tmp_path: Path, gsm8k) -> None:
    """A worked gsm8k answer uses its question's numbers; one cut at a line break between two
    steps ("She had 10 - 9 = 1 kilogram of rice left") often has not. `endings` counts the
    prompt's numbers the answer leaves unused, so such cuts score far under cuts that used them
    all, and it flags 29 of 112 (19 before it also set the lines against the numbers, 7 without
    that count, which scored the two kinds alike)."""
    import random
    import statistics

    from tamis.ops.endings import numbers
    from tamis.ops.heuristics import _truncation

    assert numbers("1,000 apples at $2.50 and 3 pears, 1000 again") == {"1000", "2.5", "3"}
    rng = random.Random(0)
    rows, unused, used = [], set(), set()
    for i, o in enumerate(gsm8k[:2000]):
        o = {"id": f"r{i}", **o}
        lines = o["output"].split("\n")
        if i % 10 == 0 and len(lines) > 2:
            text = "\n".join(lines[: rng.randrange(1, len(lines) - 1)])
            if _truncation(text) < 1.0:  # no rule sees it
                left = numbers(o["instruction"] + "\n" + o.get("input", "")) - numbers(text)
                (unused if left else used).add(o["id"])
                o = {**o, "output": text}
        rows.append(o)
    assert len(unused) >= 100 and len(used) >= 30
    src = tmp_path / "gsm.jsonl"
    write_objects(rows, str(src))
    everything = Recipe.from_dict({"name": "e", "ops": [{"endings": {"max_end_prob": 1.0}}]})
    tamis.clean(str(src), str(tmp_path / "all"), everything, workers=2)
    score = {r["id"]: r["reasons"][0]["score"] for r in _rows(tmp_path / "all" / "rejected.jsonl")}
    assert (
        statistics.median(score[i] for i in unused) < statistics.median(score[i] for i in used) / 3
    )
    recipe = Recipe.from_dict({"name": "e", "ops": [{"endings": {}}]})
    tamis.clean(str(src), str(tmp_path / "a"), recipe, workers=2)
    flagged = {r["id"] for r in _rows(tmp_path / "a" / "rejected.jsonl")}
    assert len(flagged & unused) >= 25
    assert len(flagged - unused - used) <= 0.01 * (len(rows) - len(unused) - len(used))


def test_default_recipe_finds_tool_call_cuts_and_copies_do_not_teach_endings(
    tmp_path: Path,
) -> None:
    """The `sft` recipe runs `endings`: on real Toolformer rows it finds most of the cuts no rule
    sees. It learns each distinct answer once: 1,000 exact copies added after the rows change
    nothing in what it learns or flags on the rows."""
    path = DATA / "gpteacher_toolformer" / "toolformer-dedupe-only-dataset.json"
    rows, cut = _rule_blind_cuts(json.loads(path.read_text())[:2000])
    copies = [{**o, "id": f"copy{i}"} for i, o in enumerate(rows[:1000])]
    flagged, notes = {}, {}
    for name, objs in (("rows", rows), ("with_copies", rows + copies)):
        src = tmp_path / f"{name}.jsonl"
        write_objects(objs, str(src))
        res = tamis.clean(str(src), str(tmp_path / name), workers=2)
        c = res.counts
        assert c["input"] == len(objs) == c["kept"] + c["rejected"] + c["quarantined"]
        (entry,) = [e for e in res.summary["operators"] if e["op"] == "endings"]
        notes[name] = entry["notes"]
        flagged[name] = {
            r["id"]
            for r in _rows(tmp_path / name / "rejected.jsonl")
            if any(x["op"] == "endings" for x in r["reasons"])
        }
    assert len(flagged["rows"] & cut) >= 0.75 * len(cut)
    assert len(flagged["rows"] - cut) <= 0.005 * (len(rows) - len(cut))
    originals = {i for i in flagged["with_copies"] if i.startswith("r")}
    assert originals == flagged["rows"]
    assert notes["with_copies"]["learnt_from"] == notes["rows"]["learnt_from"]
    # the copies, dropped as duplicates, carry the finding too (every reason is kept)
    assert flagged["with_copies"] - originals == {
        f"copy{i}" for i in range(1000) if f"r{i}" in flagged["rows"]
    }


def test_a_cut_answer_does_not_take_its_finished_duplicate_down(tmp_path: Path, gsm8k) -> None:
    """gsm8k answers cut where no rule sees it, each followed later in the file by its finished
    version: the two are near-duplicates (same question, most of the answer), and the cut one
    comes first. `endings` decides before the duplicate checks in the `sft` recipe, so where it
    finds the cut, the finished version is the one its group keeps; decided after them, the cut
    answer was kept as the group's first and then dropped, and its finished version with it."""
    # 3,000 rows: enough cuts that `endings` finds and near-dedup groups with their finished
    # version (6 here; 2 of the first 2,000 rows since `endings` also counts lines per number)
    rows, cut = _rule_blind_cuts(gsm8k[:3000])
    full = {f"r{i}": o for i, o in enumerate(gsm8k[:3000])}
    rows += [{"id": f"full-{i}", **full[i]} for i in sorted(cut)]
    src = tmp_path / "gsm.jsonl"
    write_objects(rows, str(src))
    tamis.clean(str(src), str(tmp_path / "out"), workers=2)
    why = {r["id"]: r["reasons"] for r in _rows(tmp_path / "out" / "rejected.jsonl")}
    found = {i for i in cut if any(x["op"] == "endings" for x in why.get(i, []))}
    assert len(found) >= 10
    pairs = [
        c["members"]
        for c in _rows(tmp_path / "out" / "clusters.jsonl")
        if c["op"] == "minhash_dedup"
    ]
    together = {i for i in found if any({i, f"full-{i}"} <= {m["id"] for m in p} for p in pairs)}
    assert len(together) >= 3  # the others' answers differ too much once cut
    kept = {r["id"] for r in _rows(tmp_path / "out" / "kept.jsonl")}
    assert {f"full-{i}" for i in together} <= kept


def test_maths_recipe_drops_wrong_final_numbers_with_the_slip_named(tmp_path: Path, gsm8k) -> None:
    objs, truth = inject_defects(gsm8k[:300], rate=0.3, seed=5, defects=["wrong_answer"])
    src = tmp_path / "in.jsonl"
    write_objects(objs, str(src))
    res = tamis.clean(str(src), str(tmp_path / "out"), "maths", workers=2)
    c = res.counts
    assert c["input"] == 300 == c["kept"] + c["rejected"] + c["quarantined"]
    why = {
        r["id"]: r["reasons"]
        for r in _rows(tmp_path / "out" / "rejected.jsonl")
        if any(x["reason"] == "wrong_arithmetic" for x in r["reasons"])
    }
    wrong = {o["id"] for o, t in zip(objs, truth, strict=True) if t == "wrong_answer"}
    assert len(why.keys() & wrong) >= 0.85 * len(wrong)
    # untouched answers flagged: gsm8k's own slips, checked by hand ("So it cost 192*100=$1920",
    # "they cost 6*2.5 = $18.00", "6/3=.5 hour", "4000 + 2040 = 6120 years")
    assert why.keys() - wrong == {"r167", "r168", "r198", "r224"}
    detail = next(x["detail"] for x in next(iter(why.values())) if x["op"] == "arithmetic")
    assert " = " in detail and "(is " in detail
    # the default sft recipe does not check arithmetic: the same answers are kept
    plain = tamis.clean(str(src), str(tmp_path / "sft"), workers=1)
    assert plain.counts["kept"] > c["kept"]


@pytest.mark.parametrize("name", BUILTIN)
def test_every_built_in_recipe_builds_its_operators(name: str) -> None:
    recipe = Recipe.load(name)
    built = [op.name for op in recipe.build()]
    # every step is built, in order; only an optional one may be skipped (its extra missing)
    assert {s[0] for s in recipe.steps if not s[2]} <= set(built)
    assert built == [s[0] for s in recipe.steps if s[0] in built]
    assert recipe.description
    if name == "sft-thorough":
        # the sft recipe plus the opt-in chat-LM cut-off check, nothing else changed
        sft = Recipe.load("sft").steps
        assert recipe.steps[: len(sft)] == sft
        assert [s[0] for s in recipe.steps[len(sft) :]] == ["truncation_lm"]


def test_terminal_summary_says_why_an_operator_was_skipped() -> None:
    from tamis.cli.clean import _notes

    line = _notes({"learnt_from": 222, "skipped": "too few answers"})
    assert line == "222 answers learnt from; skipped: too few answers"


def test_code_cut_where_a_new_line_begins_is_dropped_though_normalize_strips_the_indent(
    tmp_path: Path,
) -> None:
    """A code answer cut right after a line break and indentation ends, once `normalize` has
    stripped the whitespace, in a finished-looking statement; `heuristics` reads the input's own
    text and still finds the cut. Finished answers are kept."""
    import random
    import re

    from tamis.ops.heuristics import _truncation
    from tamis.testing.defects import DEFECTS

    objs = json.loads((DATA / "instruct" / "gpteacher_codegen_instruct.json").read_text())
    rng = random.Random(0)
    cuts = []
    for i, o in enumerate(objs[200:600]):
        c = DEFECTS["truncated"][0](dict(o), rng, [])
        # ends in a line break and indentation; every other rule reads it as finished
        if re.search(r"\n[ \t]+\Z", c["response"]) and _truncation(c["response"]) < 1.0:
            cuts.append({"id": f"cut{i}", **c})
    assert len(cuts) >= 20
    rows = [{"id": f"ok{i}", **o} for i, o in enumerate(objs[:200])] + cuts[:20]
    src = tmp_path / "in.jsonl"
    write_objects(rows, str(src))
    res = tamis.clean(str(src), str(tmp_path / "out"), workers=1)
    out = tmp_path / "out"
    why = {r["id"]: {x["reason"] for x in r["reasons"]} for r in _rows(out / "rejected.jsonl")}
    assert all("truncated" in why.get(c["id"], set()) for c in cuts[:20])
    assert not any("truncated" in why.get(f"ok{i}", set()) for i in range(200))
    assert res.counts["kept"] >= 190
    # the kept answers carry no trailing whitespace: normalize still fixes what it fixes
    assert all(r["response"] == r["response"].strip() for r in _rows(out / "kept.jsonl"))


def test_ids_that_repeat_across_inputs_are_warned_of(tmp_path: Path, gsm8k: list[dict]) -> None:
    """Two splits that each number their rows 0, 1, 2 ... give records the same ids: a dropped
    copy then read `"id": 5, "duplicate_of": 5`, and signals.parquet had two rows per id. The run
    says so; `--id-field ''` gives file:line ids instead, and the records keep their own field."""
    for name, rows in (("a.jsonl", gsm8k[:30]), ("b.jsonl", [*gsm8k[30:60], gsm8k[5]])):
        write_objects([{"id": i, **o} for i, o in enumerate(rows)], str(tmp_path / name))
    inputs = [str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")]
    res = runner.invoke(app, ["clean", *inputs, "-o", str(tmp_path / "o1"), "-r", "sft"])
    said = " ".join(res.output.split())
    assert res.exit_code == 0 and "30 ids name more than one record (such as 0)" in said, said
    res = runner.invoke(
        app, ["clean", *inputs, "-o", str(tmp_path / "o2"), "-r", "sft", "--id-field", ""]
    )
    assert res.exit_code == 0 and "more than one record" not in res.output, res.output
    (dropped,) = [json.loads(x) for x in (tmp_path / "o2" / "rejected.jsonl").open()]
    assert dropped["id"] == "b.jsonl:31" and dropped["record"]["id"] == 30
    assert {r["duplicate_of"] for r in dropped["reasons"]} == {"a.jsonl:6"}


def test_kept_jsonl_lines_are_the_input_lines_as_written(tmp_path: Path, gsm8k) -> None:
    """A JSONL record no operator changed is written as its input line, byte for byte (compact
    separators, \\u escapes and key order kept, so `diff` shows only what was dropped); one that
    normalize changed is written anew. Both past the 50 rows read in the main process to detect
    the format, and on one core and two."""
    rows = [dict(o) for o in gsm8k[:120]]
    rows[70]["output"] += "   \r\n"  # normalize strips it: that record is written anew
    lines = []
    for i, o in enumerate(rows):
        if i % 3 == 0:
            lines.append(json.dumps(o, separators=(",", ":")))
        elif i % 3 == 1:
            lines.append(json.dumps({"note": "é", **o}))  # ASCII escapes, another key first
        else:
            lines.append(json.dumps(o, ensure_ascii=False, indent=None))
    src = tmp_path / "in.jsonl"
    src.write_bytes(("".join(f"  {ln}\r\n" for ln in lines)).encode())
    for workers in (1, 2):
        out = tmp_path / f"out{workers}"
        res = tamis.clean(str(src), str(out), workers=workers, batch_size=40)
        kept = (out / "kept.jsonl").read_text(encoding="utf-8").split("\n")[:-1]
        rejected = {r["id"] for r in _rows(out / "rejected.jsonl")}
        want = [ln for i, ln in enumerate(lines) if f"in.jsonl:{i + 1}" not in rejected]
        assert len(kept) == res.counts["kept"] == len(want) > 100
        changed = want.index(lines[70])
        fixed = {**json.loads(lines[70]), "output": gsm8k[70]["output"]}
        assert kept[changed] == json.dumps(fixed, ensure_ascii=False)
        assert kept[:changed] + kept[changed + 1 :] == want[:changed] + want[changed + 1 :]


def test_signals_are_the_arrays_pyarrow_makes_without_pandas(tmp_path: Path, gsm8k) -> None:
    """signals.parquet's columns are built from numpy buffers, so that pyarrow never imports
    pandas (0.1 s, ~60 MB a run); each must be the array `pa.array` makes of the same values, and
    values that do not fit their type must fail as they do in `pa.array`."""
    import math

    import pyarrow as pa
    import pyarrow.parquet as pq

    from tamis.pipeline.arrow import arrow_array

    objs, _ = inject_defects(gsm8k[:300], rate=0.5, seed=3)
    src = tmp_path / "in.jsonl"
    write_objects(objs, str(src))
    # a fresh interpreter: the whole run, signals included, without pandas
    code = (
        "import sys, tamis; tamis.clean(sys.argv[1], sys.argv[2], 'sft', workers=1); "
        "assert 'pandas' not in sys.modules, 'pandas imported'"
    )
    subprocess.run([sys.executable, "-c", code, str(src), str(tmp_path / "out")], check=True)
    table = pq.read_table(tmp_path / "out" / "signals.parquet")
    assert table.num_rows == 300
    cases = [(table.column(i).to_pylist(), f.type) for i, f in enumerate(table.schema)]
    cases += [
        ([None, None], pa.int32()),
        ([1, None, 3], pa.int32()),
        ([True, None, False], pa.bool_()),
        ([0.1, None, math.nan, 1e300, -0.0], pa.float32()),
        ([2**31 - 1, -(2**31)], pa.int32()),
        (["é", None, "", "λx.x"], pa.string()),
        ([], pa.float32()),
        ([2**40], pa.int64()),
        ([1.5, 2.0], pa.int32()),  # pyarrow truncates
        ([1, 2, None], pa.float32()),
    ]
    for values, typ in cases:
        ours, theirs = arrow_array(values, typ), pa.array(values, typ)
        assert ours.type == theirs.type and ours.null_count == theirs.null_count
        # repr tells NaN, -0.0 and float32 rounding apart, which == and Array.equals do not
        assert list(map(repr, ours.to_pylist())) == list(map(repr, theirs.to_pylist())), typ
    assert any(c[0].count(None) for c in cases[:-10])  # real columns with missing values too
    bad = [
        ([2**31], pa.int32()),
        ([True, 2], pa.int32()),
        ([3], pa.string()),
        ([2**24 + 1], pa.float32()),
    ]
    for values, typ in bad:
        with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError, OverflowError)):
            pa.array(values, typ)
        with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError, OverflowError)):
            arrow_array(values, typ)
