"""Near-duplicates (MinHash LSH) on real data: planted edited copies of gsm8k records are found,
clusters are listed, keep policies are honoured, results do not depend on workers."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from tamis.ops import lsh
from tamis.ops.shingles import shingle
from tamis.pipeline.runner import clean
from tamis.testing.defects import edit_words


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """400 gsm8k records plus 40 copies of some of them with 5% of words edited."""
    gsm = json.loads(
        (Path(__file__).parent.parent.parent / "shared/data/instruct/gsm_8k_train.json").read_text()
    )[:400]
    rng = random.Random(7)
    vocab = sorted({w for o in gsm for w in o["output"].split()})
    rows = [{"id": f"o{i}", **o} for i, o in enumerate(gsm)]
    truth = {}
    for k, i in enumerate(rng.sample(range(len(gsm)), 40)):
        o = gsm[i]
        copy = {
            "id": f"c{k}",
            "instruction": edit_words(o["instruction"], 0.05, rng, vocab),
            "input": o["input"],
            "output": edit_words(o["output"], 0.05, rng, vocab),
        }
        # make every copy a little longer, so that keep: longest must choose it
        while len(copy["instruction"] + copy["output"]) <= len(
            o["instruction"] + o["output"]
        ) or len(re.findall(r"\w+", copy["output"])) <= len(re.findall(r"\w+", o["output"])):
            copy["output"] += " so"
        rows.append(copy)
        truth[f"c{k}"] = f"o{i}"
    path = tmp_path_factory.mktemp("planted") / "gsm_planted.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, truth


def _recipe(tmp: Path, **params) -> Path:
    path = tmp / "recipe.yaml"
    path.write_text(yaml.safe_dump({"name": "near", "ops": [{"minhash_dedup": params}]}))
    return path


def _dup_of(out: Path) -> dict[str, str]:
    rows = [json.loads(x) for x in (out / "rejected.jsonl").read_text().splitlines()]
    return {r["id"]: r["reasons"][0]["duplicate_of"] for r in rows}


def test_planted_near_duplicates_are_found_and_clustered(tmp_path: Path, planted) -> None:
    path, truth = planted
    res = clean(str(path), str(tmp_path / "out"), str(_recipe(tmp_path)))
    dup_of = _dup_of(tmp_path / "out")
    assert dup_of == truth  # every planted copy, nothing else, each naming its original
    clusters = [json.loads(x) for x in (tmp_path / "out/clusters.jsonl").read_text().splitlines()]
    assert len(clusters) == 40
    assert all(c["size"] == 2 and c["kept"].startswith("o") for c in clusters)
    notes = next(o for o in res.summary["operators"] if o["op"] == "minhash_dedup")["notes"]
    assert (notes["bands"], notes["rows"]) == lsh.optimal_param(0.5, 128, 0.2, 0.8)
    c = res.counts
    assert c["input"] == c["kept"] + c["rejected"] + c["quarantined"] == 440


def test_keep_policies(tmp_path: Path, planted) -> None:
    path, truth = planted
    clean(str(path), str(tmp_path / "l"), str(_recipe(tmp_path, keep="longest")))
    assert _dup_of(tmp_path / "l") == {o: c for c, o in truth.items()}  # the longer copies stay
    # best by a signal: answer length in words from heuristics; the copies have more words
    recipe = tmp_path / "best.yaml"
    ops = [
        {"heuristics": {}},
        {"minhash_dedup": {"keep": "best", "best_by": "heuristics.words_answer"}},
    ]
    recipe.write_text(yaml.safe_dump({"name": "b", "ops": ops}))
    clean(str(path), str(tmp_path / "b"), str(recipe))
    rows = [json.loads(x) for x in (tmp_path / "b/rejected.jsonl").read_text().splitlines()]
    near = {
        r["id"]: x["duplicate_of"] for r in rows for x in r["reasons"] if x["op"] == "minhash_dedup"
    }
    # the copy (more words) stays, unless heuristics drops it: then the original stays instead
    bad = {r["id"] for r in rows for x in r["reasons"] if x["op"] == "heuristics"}
    assert bad & set(truth)  # the case is exercised: an edit broke a bracket in some copy
    expected = {(c, o) if c in bad else (o, c) for c, o in truth.items()}
    assert set(near.items()) == expected


def test_clusters_stable_across_runs_and_workers(tmp_path: Path, planted) -> None:
    path, _ = planted
    recipe = str(_recipe(tmp_path))
    clean(str(path), str(tmp_path / "a"), recipe, workers=1, batch_size=64)
    clean(str(path), str(tmp_path / "b"), recipe, workers=2, batch_size=100)
    for name in ("clusters.jsonl", "rejected.jsonl", "kept.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_keeper_is_chosen_among_records_other_operators_keep(tmp_path: Path) -> None:
    """An exact copy whose first member another operator drops still keeps one member."""
    good = "Natalia sold clips to 48 of her friends in April, and then she sold half as many."
    rows = [
        {"id": "a", "instruction": good, "input": "", "output": "N/A"},  # placeholder answer
        {"id": "b", "instruction": good, "input": "", "output": "She sold 72 clips."},
    ]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        yaml.safe_dump({"name": "x", "ops": [{"heuristics": {}}, {"exact_dedup": {}}]})
    )
    res = clean(str(path), str(tmp_path / "o"), str(recipe))
    assert res.counts["kept"] == 1
    assert json.loads((tmp_path / "o/kept.jsonl").read_text())["id"] == "b"


def test_shingles_are_the_same_in_every_process_and_short_texts_match() -> None:
    sh = shingle(["Hello, world!", "hello world", "", "..."], "word", 3)
    assert sh.rec.tolist() == [0, 1]
    assert sh.hashes[0] == sh.hashes[1]
    # fixed values: the hash must not depend on the process (PYTHONHASHSEED) or the batch
    a = shingle(["the cat sat on the mat"], "word", 2).hashes
    b = shingle(["x y", "the cat sat on the mat"], "word", 2)
    assert np.array_equal(a, b.hashes[b.rec == 1])


def test_optimal_param_matches_text_dedup_rule() -> None:
    """Same choice as text-dedup's optimal_param (scipy quad over the same two areas)."""
    from scipy.integrate import quad

    def reference(t: float, n: int) -> tuple[int, int]:
        best, opt = float("inf"), (0, 0)
        for b in range(1, n + 1):
            for r in range(1, n // b + 1):
                fp = quad(lambda s, b=b, r=r: 1 - (1 - s**r) ** b, 0.0, t)[0]
                fn = quad(lambda s, b=b, r=r: (1 - s**r) ** b, t, 1.0)[0]
                if 0.5 * fp + 0.5 * fn < best:
                    best, opt = 0.5 * fp + 0.5 * fn, (b, r)
        return opt

    for t, n in [(0.7, 64), (0.5, 32), (0.8, 64)]:
        assert lsh.optimal_param(t, n) == reference(t, n)
    assert lsh.optimal_param(0.7, 256) == (25, 10)  # text-dedup's defaults


def test_a_chain_of_similar_pairs_drops_only_what_is_like_the_keeper(tmp_path: Path) -> None:
    """Stars, not chains: on real GPTeacher code-gen (which asks for the factorial in C++ several
    times) every record dropped as a near-duplicate is at least `threshold` like its keeper,
    while the connected components (for splits) still join the chains."""
    from tamis.ops.clusters import star_clusters
    from tamis.ops.near_dedup import near_duplicate_clusters

    # a ~ b ~ c, a not ~ c: b goes with a, c stays
    labels = star_clusters(4, np.array([[0, 1], [1, 2]]), np.arange(4))
    assert labels.tolist() == [0, 0, 2, 3]
    data = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "instruct"
    objs = json.loads((data / "gpteacher_codegen_instruct.json").read_text())[:1500]
    src = tmp_path / "cg.jsonl"
    src.write_text("".join(json.dumps(o) + "\n" for o in objs))
    res = clean(str(src), str(tmp_path / "out"), "sft", workers=1, use_cache=False)
    scores = [
        r["score"]
        for line in Path(res.files["rejected.jsonl"]).read_text().splitlines()
        for r in json.loads(line)["reasons"]
        if r["op"] == "minhash_dedup"
    ]
    assert len(scores) >= 10 and min(scores) >= 0.5
    texts = ["\n".join(str(v) for v in o.values() if v) for o in objs]
    groups = near_duplicate_clusters(texts)
    assert len(np.unique(groups)) < len(objs) - len(scores)  # chains joined for splits


def test_signatures_kept_on_disk_give_what_memory_gives(tmp_path: Path, planted) -> None:
    """The clean run keeps signatures in a column file (memory flat as records grow): every LSH
    step reads it a block of columns at a time and must answer exactly what the array does."""
    from tamis.ops.near_dedup import MinHashDedup

    path, _ = planted
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    texts = [f"{r['instruction']}\n{r['output']}" for r in rows]
    op = MinHashDedup()
    keys = op.text_keys(texts)
    sig = keys["sig"]
    col = lsh.ColumnFile(str(tmp_path / "sig"), len(sig), sig.shape[1])
    col.FLUSH = 7  # rows buffered before a write: batches of 3 cross it unevenly
    for s in range(0, len(sig), 3):
        col.append(sig[s : s + 3])
    col.finish()
    assert np.array_equal(lsh.columns(col, 0, sig.shape[1]), sig)
    assert np.array_equal(lsh.columns(col, 5, 21), sig[:, 5:21])
    subset = np.random.default_rng(0).permutation(len(sig))[:300]
    assert np.array_equal(lsh.row_hashes(col, subset), lsh.row_hashes(sig[subset]))
    cand = lsh.candidate_pairs(col, op.bands, op.rows, subset=subset)
    assert len(cand) and np.array_equal(cand, lsh.candidate_pairs(sig[subset], op.bands, op.rows))
    pairs = subset[cand]
    assert np.array_equal(lsh.estimated_jaccard(col, pairs), lsh.estimated_jaccard(sig, pairs))
    on_disk = {**keys, "sig": col}
    assert np.array_equal(op.similar_pairs(on_disk), op.similar_pairs(keys))
    with pytest.raises(ValueError, match="rows written"):
        lsh.ColumnFile(str(tmp_path / "short"), 5, 4).finish()
    extra = lsh.ColumnFile(str(tmp_path / "long"), 2, 4)
    extra.append(sig[:3, :4])
    with pytest.raises(ValueError, match="more than"):
        extra.finish()


def test_exact_verification_reads_shingle_sets_from_disk(tmp_path: Path, planted) -> None:
    """`verify: exact` keeps each record's shingle set in a file (memory holds an offset a
    record): a clean run with it and 2 workers finds every planted copy, and each pair it
    verifies has the shingle Jaccard computed here from the texts, at or above the threshold."""
    from tamis.ops.near_dedup import MinHashDedup, ShingleFile, _exact_jaccard

    path, truth = planted
    res = clean(str(path), str(tmp_path / "out"), str(_recipe(tmp_path, verify="exact")), workers=2)
    assert _dup_of(tmp_path / "out") == truth
    c = res.counts
    assert c["input"] == c["kept"] + c["rejected"] + c["quarantined"] == 440

    rows = [json.loads(x) for x in path.read_text().splitlines()]
    texts = [f"{r['instruction']}\n{r['input']}\n{r['output']}".replace("\n\n", "\n") for r in rows]
    op = MinHashDedup(verify="exact")
    keys = op.text_keys(texts)
    sets = ShingleFile(str(tmp_path / "sets"))
    for s in range(0, len(texts), 7):  # batches as the workers send them, one of them empty
        sets.append(keys["sets"][s : s + 7])
    sets.append([])
    sets.finish()
    assert len(sets) == len(texts)
    assert all(np.array_equal(sets[i], keys["sets"][i]) for i in range(len(texts)))
    sh = shingle(texts, "word", 3, True, True)
    brute = [set(sh.hashes[sh.rec == i].tolist()) for i in range(len(texts))]
    pairs = op.similar_pairs({**keys, "sets": sets})
    assert len(pairs) >= 40
    jac = _exact_jaccard(sets, pairs)
    for (a, b), j in zip(pairs.tolist(), jac, strict=True):
        assert j == len(brute[a] & brute[b]) / len(brute[a] | brute[b]) >= 0.5
    index = {r["id"]: i for i, r in enumerate(rows)}
    found = {tuple(sorted((index[k], index[v]))) for k, v in truth.items()}
    assert found <= {tuple(p) for p in pairs.tolist()}


def test_a_shared_tool_description_alone_does_not_make_duplicates(tmp_path: Path) -> None:
    """Toolformer repeats one long tool description in every prompt of a tool: compared whole,
    three records in four look alike. Pairs whose answers differ are set apart, so what is left
    are rewordings of one request with one answer (`Here are the top headlines: news(...)`)."""
    path = Path(__file__).parent.parent.parent / "shared/data/gpteacher_toolformer"
    rows = json.loads((path / "toolformer-dedupe-only-dataset.json").read_text())[:2000]
    src = tmp_path / "toolformer.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    whole = clean(str(src), str(tmp_path / "whole"), str(_recipe(tmp_path, answer_threshold=0)))
    res = clean(str(src), str(tmp_path / "answers"), str(_recipe(tmp_path)), workers=2)
    assert whole.summary["counts"]["rejected"] > 0.6 * len(rows)
    assert res.summary["counts"]["rejected"] < 0.25 * len(rows)
    (entry,) = res.summary["operators"]
    assert entry["notes"]["unlike_answers"] > entry["notes"]["similar_pairs"]
    answer = {f"toolformer.jsonl:{i + 1}": r["output"] for i, r in enumerate(rows)}
    sims = []
    for row in map(json.loads, (tmp_path / "answers" / "rejected.jsonl").read_text().splitlines()):
        (reason,) = row["reasons"]
        pair = shingle([row["record"]["output"], answer[reason["duplicate_of"]]])
        a, b = (set(pair.hashes[pair.rec == k].tolist()) for k in (0, 1))
        sims.append(len(a & b) / len(a | b))
    assert np.median(sims) >= 0.5 and np.mean(np.array(sims) < 0.3) <= 0.05


def test_signatures_fill_every_bin_and_estimate_jaccard(planted) -> None:
    """One-permutation MinHash leaves most bins of a short answer empty; densification fills them
    from other bins, so every bin of a record with shingles holds a value, a record without any
    stays empty, and the share of equal bins still estimates the Jaccard similarity (the planted
    copies, 5% of words edited, against their originals)."""
    path, truth = planted
    rows = {r["id"]: r for r in map(json.loads, path.read_text().split("\n")[:-1])}
    pairs = list(truth.items())[:20]
    texts = [rows[i]["output"] for pair in pairs for i in pair] + ["", "..."]
    sh = shingle(texts, "word", 3)
    sig = lsh.signatures(sh, 128)
    assert (sig[:-2] != lsh.EMPTY).all() and (sig[-2:] == lsh.EMPTY).all()
    # a signature with every bin filled is left as it is
    assert np.array_equal(lsh.densify(sig.copy()), sig)
    errors = []
    for k in range(len(pairs)):
        a, b = (set(sh.hashes[sh.rec == j].tolist()) for j in (2 * k, 2 * k + 1))
        true = len(a & b) / len(a | b)
        estimate = float(np.mean(sig[2 * k] == sig[2 * k + 1]))
        errors.append(abs(estimate - true))
    assert max(errors) < 0.15 and np.mean(errors) < 0.05, errors


@pytest.mark.parametrize(("lowercase", "punctuation", "n"), [(True, True, 3), (False, False, 1)])
def test_answer_shingles_taken_from_the_whole_text_are_the_answers_own(
    tmp_path: Path, gsm8k, lowercase: bool, punctuation: bool, n: int
) -> None:
    """`minhash_dedup` splits and hashes a record's words once, for its whole text and its
    answer (the text's end, after a line break). Each record's shingles must be those two plain
    `shingle` calls give, also where the answer does not end the text (several answers, a tool
    call after it, no answer) and with non-ASCII text and NULs; and the operator's keys too."""
    from tamis.ops.base import get_operator, joined, record_text
    from tamis.ops.shingles import shingle_with_tails
    from tamis.records.io import Reader, write_objects

    data = Path(__file__).parent.parent.parent / "shared/data"
    chats = []
    for i, (a, b) in enumerate(zip(gsm8k[:300], gsm8k[1:301], strict=True)):
        msgs = [{"role": "user", "content": a["instruction"]}]
        msgs.append({"role": "assistant", "content": a["output"]})
        if i % 3 == 0:  # two answers: not the end of the text
            msgs += [{"role": "user", "content": b["instruction"]}]
            msgs += [{"role": "assistant", "content": b["output"]}]
        if i % 5 == 0:
            msgs[-1]["content"] = ""
        if i % 7 == 0:
            msgs[-1]["content"] = "Ça coûte 5 € — ΟΔΟΣ\x00 fin " + msgs[-1]["content"]
        if i % 11 == 0:  # a tool call after the answer's text
            call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            msgs[-1] = {"role": "assistant", "content": "Let me look:", "tool_calls": [call]}
        if i % 13 == 0:
            msgs[-1]["content"] = "two words"  # fewer words than an n-gram
        chats.append({"messages": msgs})
    write_objects(chats, str(tmp_path / "chats.jsonl"))
    records = list(Reader([str(tmp_path / "chats.jsonl")]))
    for name in ("gpteacher_codegen_instruct.json", "gpteacher_roleplay.json"):
        records += list(Reader([str(data / "instruct" / name)]))[:300]
    records += list(Reader([str(data / "banking77" / "train.csv")]))[:100]  # no answers

    def per_record(sh) -> list[list[int]]:
        return [sorted(set(sh.hashes[sh.rec == i].tolist())) for i in range(sh.n_records)]

    texts = [record_text(r) for r in records]
    answers = [joined(r, ("assistant",)) for r in records]
    whole, tails = shingle_with_tails(texts, answers, n, lowercase, punctuation)
    assert per_record(whole) == per_record(shingle(texts, "word", n, lowercase, punctuation))
    assert per_record(tails) == per_record(shingle(answers, "word", n, lowercase, punctuation))
    assert sum(1 for t, a in zip(texts, answers, strict=True) if a and not t.endswith(a)) > 100

    op = get_operator("minhash_dedup")(lowercase=lowercase, punctuation=punctuation, ngram=n)
    keys = op.keys(records)
    plain = op.text_keys(answers)
    assert np.array_equal(keys["asig"], plain["sig"]) and np.array_equal(keys["ahas"], plain["has"])
    assert np.array_equal(keys["sig"], op.text_keys(texts)["sig"])
