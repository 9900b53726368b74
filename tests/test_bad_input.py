"""Bad input: a clear one-line error naming file and line (exit 2), or quarantine and go on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import DATA
from tamis.cli.main import app

runner = CliRunner()


def _clean(tmp_path: Path, *inputs: str) -> tuple[int, str, Path]:
    out = tmp_path / "out"
    res = runner.invoke(app, ["clean", *inputs, "-o", str(out), "-w", "1", "--no-cache"])
    return res.exit_code, res.output, out


def _lines(path: Path) -> list[dict]:
    """The objects of a JSONL file. Lines end at "\n" only: `str.splitlines` also splits at
    U+2028, which gsm8k holds raw inside strings (valid JSON, written as is)."""
    return [json.loads(x) for x in path.read_text(encoding="utf-8").split("\n") if x]


def _gsm_lines(gsm8k: list[dict], n: int) -> list[str]:
    return [json.dumps(o) for o in gsm8k[:n]]


def test_malformed_json_line_and_invalid_utf8_are_quarantined(tmp_path: Path, gsm8k) -> None:
    lines = [x.encode() for x in _gsm_lines(gsm8k, 6)]
    lines[2] = lines[2][:-5]  # cut: malformed JSON
    lines[4] = lines[4][:30] + b"\xff" + lines[4][30:]  # not UTF-8
    p = tmp_path / "bad.jsonl"
    p.write_bytes(b"\n".join(lines) + b"\n")
    code, _, out = _clean(tmp_path, str(p))
    assert code == 0
    q = _lines(out / "quarantine.jsonl")
    assert [(x["line"], x["error"].split(":")[0].split(" at")[0]) for x in q] == [
        (3, "malformed JSON"),
        (5, "invalid UTF-8"),
    ]
    assert q[0]["source"] == str(p) and q[0]["raw"]
    s = json.loads((out / "summary.json").read_text())["counts"]
    assert s == {"input": 6, "kept": 4, "rejected": 0, "quarantined": 2}


def test_ragged_csv_rows_are_quarantined(tmp_path: Path) -> None:
    rows = (DATA / "banking77" / "train.csv").read_text().splitlines()[:8]
    rows[3] += ",extra_field"
    rows[6] = rows[6].split(",")[0]
    p = tmp_path / "ragged.csv"
    p.write_text("\n".join(rows) + "\n")
    code, _, out = _clean(tmp_path, str(p))
    assert code == 0
    q = _lines(out / "quarantine.jsonl")
    assert [x["line"] for x in q] == [4, 7]
    assert "row has 3 fields, the header has 2" in q[0]["error"]
    assert json.loads((out / "summary.json").read_text())["counts"]["kept"] == 5


def test_spreadsheet_csv_files(tmp_path: Path) -> None:
    """What spreadsheets write: `;` between columns (a locale whose decimal mark is the comma)
    used to stop the run ("could not detect the format (fields seen: ['text;category'])"); it
    reads as the comma file does. A Windows-1252 file quarantines each line with an accent, now
    with the encoding and the command that converts it named."""
    import csv

    import tamis

    with open(DATA / "banking77" / "train.csv", newline="") as fh:
        rows = list(csv.reader(fh))[:41]
    rows[4][0] = rows[4][0].replace("card", "carte bancaire, déjà commandée,", 1)
    for name, delimiter, encoding in (
        ("comma.csv", ",", "utf-8"),
        ("semi.csv", ";", "utf-8"),
        ("win.csv", ",", "cp1252"),
    ):
        with open(tmp_path / name, "w", newline="", encoding=encoding) as fh:
            csv.writer(fh, delimiter=delimiter).writerows(rows)
    comma = [r.to_raw() for r in tamis.read(str(tmp_path / "comma.csv"))]
    assert len(comma) == 40 and comma[3]["text"] == rows[4][0]
    assert [r.to_raw() for r in tamis.read(str(tmp_path / "semi.csv"))] == comma
    code, _, out = _clean(tmp_path, str(tmp_path / "win.csv"))
    assert code == 0
    (q,) = _lines(out / "quarantine.jsonl")
    assert q["line"] == 5 and "Windows-1252" in q["error"] and "iconv -f cp1252" in q["error"]
    assert "--encoding cp1252" in q["error"]
    assert json.loads((out / "summary.json").read_text())["counts"]["input"] == 40
    # the option the hint names: the file reads as the UTF-8 one does, nothing quarantined
    win = tamis.read(str(tmp_path / "win.csv"), encoding="cp1252")
    assert [r.to_raw() for r in win] == comma and not win.quarantined
    # beside a Parquet file, whose bytes are no text: the encoding is for the text files only
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(comma), tmp_path / "same.parquet")
    both = tamis.read(
        [str(tmp_path / "same.parquet"), str(tmp_path / "win.csv")], encoding="cp1252"
    )
    assert [r.to_raw() for r in both] == comma + comma
    code, _, out = _clean(tmp_path, str(tmp_path / "win.csv"), "--encoding", "cp1252")
    assert code == 0 and "déjà commandée" in (out / "kept.jsonl").read_text(encoding="utf-8")
    # a byte the encoding has no character for: that line quarantined, named; the rest reads
    csv_lines = (tmp_path / "win.csv").read_bytes().split(b"\n")
    json_lines = [json.dumps({"text": r[0], "label": r[1]}).encode() for r in rows[1:]]
    for name, data, at in (("bad.csv", csv_lines, 10), ("bad.jsonl", json_lines, 9)):
        data[at - 1] = data[at - 1].replace(b"card", b"c\x81rd", 1)
        (tmp_path / name).write_bytes(b"\n".join(data) + b"\n")
        code, _, out = _clean(tmp_path, str(tmp_path / name), "--encoding", "cp1252")
        assert code == 0
        (q,) = _lines(out / "quarantine.jsonl")
        assert q["line"] == at and q["error"] == "0x81: no character in the file's encoding"
        assert json.loads((out / "summary.json").read_text())["counts"]["input"] == 40
    # an unknown encoding: a clear stop
    code, err, _ = _clean(tmp_path, str(tmp_path / "win.csv"), "--encoding", "klingon")
    assert code == 2 and "unknown encoding 'klingon'" in err


def test_utf16_files_read_by_their_byte_order_mark(tmp_path: Path, gsm8k) -> None:
    """What Windows writes as "Unicode": Excel's Unicode Text (UTF-16 LE, a BOM, tabs) and
    PowerShell's `>` (UTF-16 LE with a BOM) used to stop with "looks like a binary file"; they
    read as their UTF-8 copies do, compressed or not, line numbers and quarantine kept."""
    import csv
    import gzip

    import tamis

    with open(DATA / "banking77" / "train.csv", newline="") as fh:
        rows = list(csv.reader(fh))[:41]
    rows[4][0] = rows[4][0].replace("card", "carte bancaire, déjà commandée,", 1)
    lines = [json.dumps(o, ensure_ascii=False) for o in gsm8k[:30]]
    lines[0] = lines[0].replace("Natalia", "Natália")
    lines[12] = lines[12][:40]  # a broken line: quarantined with its number
    jsonl = "\n".join(lines) + "\n"
    (tmp_path / "utf8.jsonl").write_text(jsonl, encoding="utf-8")
    for name, encoding in (
        ("ps.jsonl", "utf-16"),
        ("be.jsonl", "utf-16-be"),
        ("u32.jsonl", "utf-32"),
    ):
        data = jsonl.encode(encoding)
        if encoding == "utf-16-be":
            data = b"\xfe\xff" + data
        (tmp_path / name).write_bytes(data)
    (tmp_path / "ps.jsonl.gz").write_bytes(gzip.compress((tmp_path / "ps.jsonl").read_bytes()))
    with open(tmp_path / "utf8.tsv", "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, delimiter="\t").writerows(rows)
    with open(tmp_path / "excel.tsv", "w", newline="", encoding="utf-16") as fh:
        csv.writer(fh, delimiter="\t").writerows(rows)

    def objects(path: Path) -> list:
        reader = tamis.read(str(path))
        return [(r.id, r.to_raw()) for r in reader] + [
            (q.line, q.error) for q in reader.quarantined
        ]

    want = objects(tmp_path / "utf8.jsonl")
    assert len(want) == 30 and want[-1][0] == 13
    for name in ("ps.jsonl", "be.jsonl", "u32.jsonl", "ps.jsonl.gz"):
        got = objects(tmp_path / name)
        assert [x[1] for x in got] == [x[1] for x in want], name
        assert [x[0].split(":")[-1] for x in got[:-1]] == [x[0].split(":")[-1] for x in want[:-1]]
    assert objects(tmp_path / "excel.tsv")[3][1]["text"] == rows[4][0]
    assert [x[1] for x in objects(tmp_path / "excel.tsv")] == [
        x[1] for x in objects(tmp_path / "utf8.tsv")
    ]
    code, _, out = _clean(tmp_path, str(tmp_path / "ps.jsonl"))
    assert code == 0
    (q,) = _lines(out / "quarantine.jsonl")
    assert q["line"] == 13
    (tmp_path / "nobom.jsonl").write_bytes(jsonl.encode("utf-16-le"))  # no mark: said so
    code, err, _ = _clean(tmp_path, str(tmp_path / "nobom.jsonl"))
    assert code == 2 and "UTF-16 (LE) text without a byte-order mark" in err
    assert "iconv -f utf-16le -t utf-8" in err
    kept = (out / "kept.jsonl").read_text(encoding="utf-8")  # outputs are UTF-8
    assert "Natália" in kept


def test_a_10_mb_field_is_quarantined_and_the_rest_goes_through(tmp_path: Path, gsm8k) -> None:
    big = dict(gsm8k[1], output="x " * 5_000_000)
    p = tmp_path / "big.jsonl"
    p.write_text("\n".join([json.dumps(gsm8k[0]), json.dumps(big), json.dumps(gsm8k[2])]) + "\n")
    code, _, out = _clean(tmp_path, str(p))
    assert code == 0
    (q,) = _lines(out / "quarantine.jsonl")
    assert q["line"] == 2 and "MB, over the" in q["error"] and "--max-record-mb" in q["error"]
    assert len(_lines(out / "kept.jsonl")) == 2


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing.jsonl", "no such file"),
        (lambda p: p, "is a directory"),
        (lambda p: _write(p / "empty.jsonl", b""), "file is empty"),
        (lambda p: _write(p / "blob.jsonl", bytes(range(256)) * 4), "binary file"),
        (lambda p: _write(p / "x.yaml", b"a: 1\n"), "unknown file type"),
        (lambda p: _write(p / "odd.jsonl", b'{"foo": 1, "bar": 2}\n'), "could not detect"),
        (lambda p: _write(p / "broken.json", b'[{"text": "a"},\n {"text": }]'), "malformed JSON"),
    ],
    ids=["missing", "directory", "empty", "binary", "unknown-type", "unknown-format", "bad-json"],
)
def test_unusable_input_stops_with_one_clear_line(tmp_path: Path, make, message: str) -> None:
    target = make(tmp_path)
    code, output, _ = _clean(tmp_path, str(target))
    assert code == 2
    assert message in output and str(target) in output
    assert "Traceback" not in output
    assert len(output.strip().splitlines()) <= 2  # one message (rich may wrap it once)


def test_broken_json_error_names_the_line(tmp_path: Path) -> None:
    p = _write(tmp_path / "broken.json", b'[{"text": "a"},\n {"text": }]')
    _, output, _ = _clean(tmp_path, str(p))
    assert f"{p}:2:" in output.replace("\n", "")


def test_tables_whose_columns_do_not_line_up_stop_the_run(tmp_path: Path, gsm8k) -> None:
    """A CSV header naming a column twice (a row dict kept only the last one, silently) and a
    JSON object of arrays of unequal lengths (it was read as one record with list fields)."""
    rows = (DATA / "banking77" / "train.csv").read_text().splitlines()[:6]
    csv_file = tmp_path / "twice.csv"
    csv_file.write_text("\n".join(["text,category,text"] + [f"{r},x" for r in rows[1:]]) + "\n")
    code, output, _ = _clean(tmp_path, str(csv_file))
    assert code == 2 and f"{csv_file}:1:" in output.replace("\n", "")
    assert "names column 'text' twice (columns 1 and 3)" in output.replace("\n", "")
    cols = tmp_path / "cols.json"
    cols.write_text(
        json.dumps(
            {
                "instruction": [o["instruction"] for o in gsm8k[:3]],
                "output": [o["output"] for o in gsm8k[:2]],
            }
        )
    )
    code, output, _ = _clean(tmp_path, str(cols))
    assert code == 2 and "arrays differ in length (instruction 3, output 2)" in output
    # trailing unnamed columns (as spreadsheets export) are not a repeated name
    ok = tmp_path / "trailing.csv"
    ok.write_text("\n".join([rows[0] + ",,"] + [f"{r},," for r in rows[1:]]) + "\n")
    code, output, out = _clean(tmp_path, str(ok))
    assert code == 0, output
    assert len(_lines(out / "kept.jsonl")) + len(_lines(out / "rejected.jsonl")) == 5


def test_a_batch_without_a_single_word_goes_through_every_operator(tmp_path: Path, gsm8k) -> None:
    """Batch-wise operators used to crash on a batch in which no record has a word (the
    offensive model's term counts, MinHash's buckets) or a record has no text at all (a chat
    template refuses an empty conversation): real gsm8k rows emptied, or reduced to symbols,
    then every operator that needs no reference data."""
    import yaml

    pytest.importorskip("gguf")  # token_length's offline tokenizer
    ops = ["normalize", "structure", "heuristics", "arithmetic", "language", "offensive", "pii"]
    ops += ["endings", "exact_dedup", "minhash_dedup", "semantic_dedup", "outliers"]
    steps = [{op: {}} for op in ops] + [{"token_length": {"max_tokens": 512}}]
    recipe = tmp_path / "all.yaml"
    recipe.write_text(yaml.safe_dump({"name": "all", "ops": steps}))
    for name, fill in (("empty", ""), ("symbols", "?!")):
        src = tmp_path / f"{name}.jsonl"
        rows = [{**o, "instruction": fill, "output": fill} for o in gsm8k[:40]]
        src.write_text("".join(json.dumps(o) + "\n" for o in rows))
        res = runner.invoke(
            app, ["clean", str(src), "-o", str(tmp_path / name), "-r", str(recipe), "--no-cache"]
        )
        assert res.exit_code == 0, res.output
        counts = json.loads((tmp_path / name / "summary.json").read_text())["counts"]
        assert counts["input"] == 40 == counts["kept"] + counts["rejected"] + counts["quarantined"]
        assert counts["kept"] <= 1  # nothing to learn from: empty answers and copies


def test_unknown_recipe_operator_is_a_usage_error(tmp_path: Path, gsm_file: Path) -> None:
    r = tmp_path / "r.yaml"
    r.write_text("ops:\n  - nonsense: {}\n")
    res = runner.invoke(app, ["clean", str(gsm_file), "-o", str(tmp_path / "o"), "-r", str(r)])
    assert res.exit_code == 2 and "unknown operator 'nonsense'" in res.output


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
