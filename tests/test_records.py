"""Reading every real data file, round trips, format detection and exporters."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

import tamis
from conftest import DATA, data_files
from tamis.records.exporters import export
from tamis.records.io import Reader, iter_objects, sniff_filetype, write


def _objects(path: Path) -> list[dict]:
    return [x[1] for x in iter_objects(str(path), sniff_filetype(str(path)), 1 << 30)]


@pytest.mark.parametrize("path", data_files(), ids=lambda p: str(p.relative_to(DATA)))
def test_round_trip_gives_the_same_objects(path: Path, tmp_path: Path) -> None:
    records = list(tamis.read(str(path)))
    assert records, path
    assert [r.to_raw() for r in records] == _objects(path)
    # written back as JSONL and as the input's own file type, then read again: the same objects
    for suffix in (".jsonl", path.suffix):
        out = tmp_path / f"back{suffix}"
        write(records, str(out))
        assert _objects(out) == _objects(path)


def test_ids_and_provenance() -> None:
    recs = list(tamis.read(str(DATA / "banking77" / "train.csv")))
    assert recs[0].id == "train.csv:2"  # line 1 is the header
    assert recs[0].source.line == 2 and recs[0].label == "card_arrival"
    with open(DATA / "banking77" / "train.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert recs[-1].turns[0].content == rows[-1]["text"]


def test_an_id_field_is_kept_as_is(tmp_path: Path, gsm8k: list[dict]) -> None:
    p = tmp_path / "x.jsonl"
    p.write_text(json.dumps({"id": 17, **gsm8k[0]}) + "\n")
    (rec,) = tamis.read(str(p))
    assert rec.id == 17 and "id" not in rec.meta


@pytest.mark.parametrize(
    ("name", "build"),
    [
        ("alpaca", lambda o: o),
        (
            "sharegpt",
            lambda o: {
                "conversations": [
                    {"from": "human", "value": o["instruction"]},
                    {"from": "gpt", "value": o["output"]},
                ]
            },
        ),
        (
            "openai",
            lambda o: {
                "messages": [
                    {"role": "system", "content": "Solve it."},
                    {"role": "user", "content": o["instruction"]},
                    {"role": "assistant", "content": o["output"]},
                ]
            },
        ),
        ("prompt_completion", lambda o: {"prompt": o["instruction"], "completion": o["output"]}),
        ("text", lambda o: {"text": o["output"]}),
        ("text_label", lambda o: {"text": o["instruction"], "label": "math"}),
    ],
)
def test_every_format_is_detected_and_round_trips(
    name: str, build, tmp_path: Path, gsm8k: list[dict]
) -> None:
    objs = [build(o) for o in gsm8k[:20]]
    p = tmp_path / "in.jsonl"
    p.write_text("".join(json.dumps(o) + "\n" for o in objs))
    reader = Reader([str(p)])
    recs = list(reader)
    assert reader.files[0].format == name
    assert [r.to_raw() for r in recs] == objs
    msgs = recs[0].messages()
    assert msgs[-1]["content"] in (gsm8k[0]["output"], gsm8k[0]["instruction"])


def test_format_can_be_forced_and_fields_mapped(tmp_path: Path) -> None:
    p = tmp_path / "x.csv"
    p.write_text("utterance,intent\nwhere is my card,card_arrival\n")
    (rec,) = tamis.read(str(p), text_field="utterance", label_field="intent")
    assert rec.format == "text_label" and rec.label == "card_arrival"
    assert rec.turns[0].content == "where is my card"


def test_exporters(tmp_path: Path, gsm8k: list[dict]) -> None:
    p = tmp_path / "in.json"
    p.write_text(json.dumps(gsm8k[:5]))
    recs = list(tamis.read(str(p)))
    expected = [
        {"role": "user", "content": gsm8k[0]["instruction"]},
        {"role": "assistant", "content": gsm8k[0]["output"]},
    ]
    for to in ("openai", "trl", "axolotl"):
        written = export(recs, str(tmp_path / to / "d.jsonl"), to)
        first = json.loads(Path(written[0]).read_text().splitlines()[0])
        assert first["messages"] == expected
    written = export(recs, str(tmp_path / "lf" / "d.jsonl"), "llamafactory")
    first = json.loads(Path(written[0]).read_text().splitlines()[0])
    assert first["conversations"][0] == {"from": "human", "value": gsm8k[0]["instruction"]}
    info = json.loads(Path(written[1]).read_text())
    assert info["d"]["file_name"] == "d.jsonl" and info["d"]["formatting"] == "sharegpt"
    written = export(recs, str(tmp_path / "pc.jsonl"), "trl-prompt-completion")
    first = json.loads(Path(written[0]).read_text().splitlines()[0])
    assert first["prompt"] == expected[:1] and first["completion"] == expected[1:]


def test_classification_exports_label_as_answer(tmp_path: Path) -> None:
    recs = list(tamis.read(str(DATA / "banking77" / "test.csv")))[:3]
    export(recs, str(tmp_path / "o.jsonl"), "openai")
    row = json.loads((tmp_path / "o.jsonl").read_text().splitlines()[0])
    assert row["messages"][-1] == {"role": "assistant", "content": recs[0].label}


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_json_arrays_stream_element_by_element(chunk: int, monkeypatch, tmp_path: Path) -> None:
    """A JSON array is read in chunks (any size, split inside multi-byte characters) and gives
    exactly what a whole parse gives; errors still name their line."""
    import tamis.records.io as io

    roleplay = json.loads((DATA / "instruct" / "gpteacher_roleplay.json").read_text())[:40]
    roleplay[3]["response"] += " café — naïve 東京 😀"
    p = tmp_path / "rp.json"
    p.write_text("\ufeff" + json.dumps(roleplay, ensure_ascii=False, indent=2), encoding="utf-8")
    monkeypatch.setattr(io, "JSON_CHUNK", chunk)
    got = [obj for _, obj in iter_objects(str(p), "json", 1 << 20)]
    assert got == roleplay
    # the reader holds a chunk, not the file: each read asks for `chunk` bytes
    reads: list[int] = []
    real_open = open

    def spy_open(*a, **k):  # type: ignore[no-untyped-def]
        fh = real_open(*a, **k)
        orig = fh.read
        fh.read = lambda n=-1: (reads.append(n), orig(n))[1]  # type: ignore[method-assign]
        return fh

    monkeypatch.setattr(io, "open", spy_open, raising=False)
    assert len(list(iter_objects(str(p), "json", 1 << 20))) == 40
    assert -1 not in reads and max(reads) <= max(chunk, 4096)

    bad = tmp_path / "bad.json"
    text = json.dumps(roleplay[:30], indent=2)
    lines = text.split("\n")
    k = len(lines) * 2 // 3
    lines[k] = lines[k] + " }"  # breaks one element deep in the file
    bad.write_text("\n".join(lines))
    with pytest.raises(json.JSONDecodeError) as whole:
        json.loads(bad.read_text())
    with pytest.raises(io.InputError, match="malformed JSON") as e:
        list(iter_objects(str(bad), "json", 1 << 20))
    assert e.value.line == whole.value.lineno
