"""`tamis profile` on banking77 and gsm8k, and the report in headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import DATA

pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def banking_profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from typer.testing import CliRunner

    from tamis.cli.main import app

    out = tmp_path_factory.mktemp("prof") / "banking"
    src = str(DATA / "banking77" / "train.csv")
    res = CliRunner().invoke(app, ["profile", src, "-o", str(out), "--sample", "1500"])
    assert res.exit_code == 0, res.output
    assert "records: 10,003" in res.output and "77 classes" in res.output  # terminal summary
    return out


def test_profile_of_banking77(banking_profile: Path) -> None:
    d = json.loads((banking_profile / "profile.json").read_text())
    assert d["records"] == 10003 and d["formats"] == {"text_label": 10003}
    lab = d["labels"]
    assert lab["classes"] == 77 and lab["unlabelled"] == 0
    assert lab["counts"]["card_payment_fee_charged"] == max(lab["counts"].values())
    assert lab["imbalance_ratio"] == pytest.approx(
        max(lab["counts"].values()) / min(lab["counts"].values())
    )
    # the data README: 4 exact duplicates in banking77 train
    assert d["duplicates"]["exact"]["extra_copies"] == 4
    assert d["languages"]["share"]["en"] > 0.95
    tok = d["lengths"]["text"]["tokens"]
    assert 5 < tok["median"] < 30 and tok["max"] < 200
    topics = d["topics"]
    assert len(topics["clusters"]) >= 5 and sum(c["size"] for c in topics["clusters"]) == 1500
    names = " ".join(c["name"] for c in topics["clusters"])
    assert any(w in names for w in ("card", "transfer", "top", "cash", "pin"))  # banking topics
    assert 0 < topics["diversity"] < 1
    # bias: identity terms meet labels; "age:young" with the age_limit intent is the obvious one
    pairs = {(b["identity"], b["with"]) for b in d["bias"]["labels"]}
    assert ("age:young", "label:age_limit") in pairs
    assert all(-1 <= b["npmi"] <= 1 for b in d["bias"]["labels"])


def test_profile_of_gsm8k_with_signals_from_a_clean_run(tmp_path: Path, gsm8k: list[dict]) -> None:
    from tamis.pipeline.runner import clean
    from tamis.profile import profile

    src = tmp_path / "gsm.jsonl"
    rows = gsm8k[:400] + gsm8k[:20]  # 20 exact copies
    src.write_text("".join(json.dumps(o) + "\n" for o in rows))
    clean([str(src)], str(tmp_path / "clean"), "sft")
    prof = profile([str(src)], str(tmp_path / "p"), signals=str(tmp_path / "clean"), sample=420)
    d = prof.data
    assert d["records"] == 420 and d["duplicates"]["exact"]["extra_copies"] == 20
    assert set(d["lengths"]) == {"user", "assistant"}
    # gsm8k answers are longer than their questions
    assert d["lengths"]["assistant"]["tokens"]["median"] > d["lengths"]["user"]["tokens"]["median"]
    cols = d["signals"]["columns"]
    assert any(k.startswith("heuristics.") for k in cols)
    assert d["signals"]["clean"]["counts"]["input"] == 420
    assert "labels" not in d
    html = (tmp_path / "p" / "report.html").read_text()
    assert "Signals from tamis clean" in html and "Topics" in html
    assert any("duplicates: 20 exact" in line for line in prof.summary_lines())


def test_profile_of_copies_of_one_text_and_of_records_without_words(tmp_path: Path) -> None:
    """Fewer distinct texts than topics (KMeans left clusters empty and the report failed on a
    topic with no example): 30 copies of one real banking77 text, and 30 records of symbols."""
    from tamis.profile import profile

    text = (DATA / "banking77" / "train.csv").read_text().splitlines()[1].rsplit(",", 1)[0]
    for name, obj in (("copies", {"text": text.strip('"')}), ("symbols", {"text": "?!"})):
        src = tmp_path / f"{name}.jsonl"
        src.write_text((json.dumps(obj) + "\n") * 30)
        prof = profile([str(src)], str(tmp_path / name))
        topics = prof.data.get("topics")
        if topics:  # the embed extra is installed
            assert [c["size"] for c in topics["clusters"]] == [30]
        assert (tmp_path / name / "report.html").exists()


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_report_renders_in_headless_chromium(banking_profile: Path, tmp_path: Path) -> None:
    """Every plot is a decoded, non-empty image; the page logs no console error."""
    exe = _chromium()
    if exe is None:
        if os.environ.get("TAMIS_REQUIRE_BROWSER"):
            pytest.fail("Chromium is required here (TAMIS_REQUIRE_BROWSER) but is not installed")
        pytest.skip("Debian's chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=exe,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((banking_profile / "report.html").as_uri())
        page.wait_for_load_state("load")
        images = page.evaluate(
            "Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])"
        )
        headings = page.locator("h2").all_inner_texts()
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert len(images) >= 6  # lengths x2, languages, labels, topics, bias
    assert all(ok and w > 100 and h > 100 for ok, w, h in images), images
    assert errors == []
    assert {"Sizes", "Labels", "Duplicates", "Topics", "Bias signals"} <= set(headings)
    assert (tmp_path / "report.png").stat().st_size > 50_000


def test_profile_of_a_windows_1252_csv(tmp_path: Path) -> None:
    """Excel's Windows-1252 CSV: each line with an accent was counted apart as unreadable;
    `--encoding cp1252` profiles every row (real banking77 rows, accents put in)."""
    import csv

    from typer.testing import CliRunner

    from tamis.cli.main import app

    with open(DATA / "banking77" / "train.csv", newline="") as fh:
        rows = list(csv.reader(fh))[:61]
    for r in rows[1::7]:
        r[0] = r[0].replace("card", "carte déjà commandée", 1)
    with open(tmp_path / "win.csv", "w", newline="", encoding="cp1252") as fh:
        csv.writer(fh).writerows(rows)
    args = ["profile", str(tmp_path / "win.csv"), "--no-topics", "--tokenizer", "words", "--json"]
    plain = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "p1")])
    given = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "p2"), "--encoding", "cp1252"])
    assert plain.exit_code == 0 and given.exit_code == 0, given.output
    p1, p2 = (json.loads((tmp_path / d / "profile.json").read_text()) for d in ("p1", "p2"))
    assert p2["records"] == 60 and p1["records"] < 60
