"""Reading every real data file, round trips, format detection and exporters."""

from __future__ import annotations

import csv
import json
import random
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import tamis
from conftest import DATA, data_files
from tamis.cli.main import app
from tamis.records.exporters import export
from tamis.records.io import Reader, compression_of, iter_objects, sniff_filetype, write

runner = CliRunner()


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


def _chat(o: dict, key: str, who: tuple[str, str], text: str) -> list[dict]:
    return [{key: who[0], text: o["instruction"]}, {key: who[1], text: o["output"]}]


# the field names real instruction and chat data sets use, on real gsm8k rows
VARIANTS = [
    (
        "alpaca",
        lambda o: {"question": o["instruction"], "answer": o["output"]},
        "question as instruction, answer as output",
    ),  # the original GSM8K
    (
        "alpaca",
        lambda o: {
            "instruction": o["instruction"],
            "context": "",
            "response": o["output"],
            "category": "open_qa",
        },
        "context as input, response as output",
    ),  # Dolly
    (
        "alpaca",
        lambda o: {
            "system_prompt": "Think step by step.",
            "question": o["instruction"],
            "response": o["output"],
        },
        "question as instruction",
    ),  # OpenOrca
    (
        "alpaca",
        lambda o: {"prompt": o["instruction"], "response": o["output"]},
        "prompt as instruction",
    ),
    (
        "openai",
        lambda o: {
            "conversation": _chat(o, "role", ("user", "assistant"), "content"),
            "model": "vicuna-13b",
        },
        "turns from 'conversation'",
    ),  # lmsys-chat-1m
    (
        "openai",
        lambda o: {"conversations": _chat(o, "role", ("user", "assistant"), "content")},
        "turns from 'conversations'",
    ),
    (
        "sharegpt",
        lambda o: {"messages": _chat(o, "from", ("human", "gpt"), "value")},
        "turns from 'messages'",
    ),
]


@pytest.mark.parametrize(("name", "build", "reading"), VARIANTS)
def test_the_usual_other_field_names_are_read(
    name: str, build, reading: str, tmp_path: Path, gsm8k: list[dict]
) -> None:
    """Other names for the same fields are detected, said, read as the same conversation and
    written back as they came; an empty Dolly `context` is an input, which may be empty."""
    objs = [build(o) for o in gsm8k[:30]]
    p = tmp_path / "in.jsonl"
    p.write_text("".join(json.dumps(o) + "\n" for o in objs))
    reader = Reader([str(p)])
    recs = list(reader)
    assert reader.files[0].format == name and reading in reader.files[0].why
    assert [r.to_raw() for r in recs] == objs
    for r, o in zip(recs, gsm8k, strict=False):
        msgs = [m for m in r.messages() if m["role"] != "system"]
        assert msgs == [
            {"role": "user", "content": o["instruction"]},
            {"role": "assistant", "content": o["output"]},
        ]
    res = tamis.clean(str(p), str(tmp_path / "out"), recipe=_structure_only())
    assert res.counts["kept"] == 30, (tmp_path / "out" / "rejected.jsonl").read_text()[:500]


def _structure_only():
    from tamis.pipeline.recipe import Recipe

    return Recipe.from_dict({"name": "structure", "ops": [{"structure": {}}]})


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
        written = export(recs, str(tmp_path / to / "d.jsonl"), to).files
        first = json.loads(Path(written[0]).read_text().splitlines()[0])
        assert first["messages"] == expected
    written = export(recs, str(tmp_path / "lf" / "d.jsonl"), "llamafactory").files
    first = json.loads(Path(written[0]).read_text().splitlines()[0])
    assert first["conversations"][0] == {"from": "human", "value": gsm8k[0]["instruction"]}
    info = json.loads(Path(written[1]).read_text())
    assert info["d"]["file_name"] == "d.jsonl" and info["d"]["formatting"] == "sharegpt"
    written = export(recs, str(tmp_path / "pc.jsonl"), "trl-prompt-completion").files
    first = json.loads(Path(written[0]).read_text().splitlines()[0])
    assert first["prompt"] == expected[:1] and first["completion"] == expected[1:]


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_exports_leave_out_what_the_target_refuses(tmp_path: Path, gsm8k: list[dict]) -> None:
    """Records the target would refuse or learn nothing from go to <stem>.skipped.jsonl with a
    reason (records in = exported + skipped); every one it takes is written. Damage: 3 of 20 real
    gsm8k answers removed or emptied (fixed seed), and GPTeacher role-play turns laid out as
    ShareGPT conversations that LLaMA-Factory's reader skips (one ends on the user, one opens
    with the assistant)."""
    rows = [dict(o) for o in gsm8k[:20]]
    damaged = sorted(random.Random(7).sample(range(20), 3))
    for k, i in enumerate(damaged):
        if k % 2:
            rows[i]["output"] = "   "
        else:
            del rows[i]["output"]
    (tmp_path / "g.json").write_text(json.dumps(rows))
    recs = list(tamis.read(str(tmp_path / "g.json")))
    damaged_ids = [recs[i].id for i in damaged]
    for to in ("openai", "axolotl", "trl-prompt-completion", "llamafactory"):
        done = export(recs, str(tmp_path / to / "d.jsonl"), to)
        kept = _lines(tmp_path / to / "d.jsonl")
        skipped = _lines(tmp_path / to / "d.skipped.jsonl")
        assert (done.written, done.skipped, len(kept), len(skipped)) == (17, 3, 17, 3), to
        assert [s["id"] for s in skipped] == damaged_ids
        assert [s["record"] for s in skipped] == [rows[i] for i in damaged]
        assert {s["reasons"][0]["reason"] for s in skipped} == {"no_answer"}
        assert skipped[0]["reasons"][0]["op"] == f"export:{to}"
    done = export(recs, str(tmp_path / "trl" / "d.jsonl"), "trl")  # TRL learns from the prompt
    assert (done.written, done.skipped, done.skipped_path) == (20, 0, None)

    rp = json.loads((DATA / "instruct" / "gpteacher_roleplay.json").read_text())[:3]

    def turn(who: str, text: str) -> dict:
        return {"from": who, "value": text}

    convs = [
        [turn("human", rp[0]["instruction"]), turn("gpt", rp[0]["response"])],
        [
            turn("human", rp[1]["instruction"]),
            turn("gpt", rp[1]["response"]),
            turn("human", rp[2]["instruction"]),
        ],
        [turn("gpt", rp[2]["response"]), turn("human", rp[2]["instruction"])],
    ]
    path = tmp_path / "rp.jsonl"
    path.write_text("".join(json.dumps({"conversations": c}) + "\n" for c in convs))
    lf = tmp_path / "llamafactory"
    done = export(tamis.read(str(path)), str(lf / "rp.jsonl"), "llamafactory")
    assert (done.written, done.skipped) == (1, 2)
    assert done.reasons == {"turn_order": 2}
    assert [s["id"] for s in _lines(lf / "rp.skipped.jsonl")] == [
        "rp.jsonl:2",
        "rp.jsonl:3",
    ]
    # both data sets of the folder stay named in its dataset_info.json
    assert set(json.loads((lf / "dataset_info.json").read_text())) == {"d", "rp"}
    # OpenAI takes all three: it learns from the assistant turns wherever they stand
    assert export(tamis.read(str(path)), str(tmp_path / "oa.jsonl"), "openai").written == 3


def test_convert_says_what_it_left_out(tmp_path: Path) -> None:
    """Plain text has no answer to learn: to OpenAI nothing can go (exit 2, no empty file left
    for a later step), to TRL it all goes; the count and the skipped file are printed."""
    src = tmp_path / "tweets.txt"
    texts = (DATA / "tweeteval" / "sentiment" / "val_text.txt").read_text().splitlines()[:12]
    src.write_text("\n".join(texts) + "\n")
    out = tmp_path / "oa.jsonl"
    res = runner.invoke(app, ["convert", str(src), "-o", str(out), "--to", "openai"])
    assert res.exit_code == 2, res.output
    said = " ".join(res.output.split())  # rich wraps long lines
    assert "none of the records can go to OpenAI" in said and "--to trl" in said
    assert not out.exists() and len(_lines(tmp_path / "oa.skipped.jsonl")) == 12
    res = runner.invoke(app, ["convert", str(src), "-o", str(tmp_path / "t.jsonl"), "--to", "trl"])
    assert res.exit_code == 0 and "(12 records)" in " ".join(res.output.split())
    assert not (tmp_path / "t.skipped.jsonl").exists()


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


def _compress(data: bytes, path: Path, kind: str) -> Path:
    import bz2
    import gzip
    import lzma

    import pyarrow as pa

    if kind == "zstd":
        with pa.output_stream(str(path), compression="zstd") as fh:
            fh.write(data)
    else:
        path.write_bytes({"gzip": gzip, "bz2": bz2, "xz": lzma}[kind].compress(data))
    return path


SUFFIX = {"gzip": ".gz", "bz2": ".bz2", "xz": ".xz", "zstd": ".zst"}


@pytest.mark.parametrize("kind", ["gzip", "bz2", "xz", "zstd"])
def test_compressed_files_read_as_the_plain_ones(kind: str, tmp_path: Path) -> None:
    """A gzip/bzip2/xz/zstd file reads as the file inside it, streamed: the same objects and
    detected format, ids named after the compressed file."""
    plain = [
        DATA / "instruct" / "gpteacher_roleplay.json",  # a JSON array, streamed element-wise
        DATA / "banking77" / "test.csv",
        DATA / "tweeteval" / "sentiment" / "val_text.txt",
    ]
    jsonl = tmp_path / "gsm.jsonl"
    rows = json.loads((DATA / "instruct" / "gsm_8k_train.json").read_text())[:300]
    jsonl.write_text("".join(json.dumps(o) + "\n" for o in rows))
    for path in [*plain, jsonl]:
        packed = _compress(path.read_bytes(), tmp_path / (path.name + SUFFIX[kind]), kind)
        want, got = tamis.read(str(path)), tamis.read(str(packed))
        a, b = list(want), list(got)
        assert [r.to_raw() for r in b] == [r.to_raw() for r in a], packed.name
        assert got.files[0].format == want.files[0].format
        assert b[0].id == f"{packed.name}:{a[0].id.split(':')[1]}"


def test_compressed_clean_and_export(tmp_path: Path, gsm8k: list[dict]) -> None:
    """`tamis clean` (2 workers) on a gzip file keeps and rejects what it does on the plain file;
    `convert` writes .gz / .xz / .zst when the output is named so; a cut-off archive stops the
    run with one line naming the file (exit 2)."""
    plain = tmp_path / "gsm.jsonl"
    plain.write_text(
        "".join(json.dumps({"id": f"r{i}", **o}) + "\n" for i, o in enumerate(gsm8k[:400]))
    )
    packed = _compress(plain.read_bytes(), tmp_path / "gsm.jsonl.gz", "gzip")
    for src, out in ((plain, "o1"), (packed, "o2")):
        res = runner.invoke(app, ["clean", str(src), "-o", str(tmp_path / out), "-w", "2", "-q"])
        assert res.exit_code == 0, res.output
    for name in ("kept.jsonl", "rejected.jsonl", "changes.jsonl"):
        assert (tmp_path / "o1" / name).read_bytes() == (tmp_path / "o2" / name).read_bytes()
    for out in ("back.jsonl.gz", "back.json.xz", "back.csv.zst"):
        same = out.rsplit(".", 1)[0]  # written plain from the plain file, for comparison
        for src, dst in ((packed, out), (plain, same)):
            res = runner.invoke(app, ["convert", str(src), "-o", str(tmp_path / dst)])
            assert res.exit_code == 0, res.output
        assert (
            compression_of(str(tmp_path / out))
            == {"gz": "gzip", "xz": "xz", "zst": "zstd"}[out.rsplit(".", 1)[1]]
        )
        back = [r.to_raw() for r in tamis.read(str(tmp_path / out))]
        assert len(back) == 400 and back == [r.to_raw() for r in tamis.read(str(tmp_path / same))]
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(packed.read_bytes()[: len(packed.read_bytes()) // 2])
    res = runner.invoke(app, ["clean", str(cut), "-o", str(tmp_path / "o3")])
    said = " ".join(res.output.split())
    assert res.exit_code == 2 and "cut.jsonl.gz" in said and "damaged or cut off" in said


CALL = re.compile(r"^(.*?)\b([A-Za-z_]\w*)\('(.*)'\)\s*$", re.S)


def _function_calling(n: int) -> list[dict]:
    """Real Toolformer rows as OpenAI function-calling records: the tool call written at the end of
    each answer (`... wikipedia('French Revolution')`) becomes a structured `tool_calls` entry."""
    rows = json.loads(
        (DATA / "gpteacher_toolformer" / "toolformer-dedupe-only-dataset.json").read_text()
    )
    out = []
    for i, o in enumerate(r for r in rows if CALL.match(r["output"])):
        if len(out) == n:
            break
        lead, name, arg = CALL.match(o["output"]).groups()
        call = {"name": name, "arguments": json.dumps({"query": arg})}
        out.append(
            {
                "messages": [
                    {"role": "user", "content": f"{o['instruction']}\n\n{o['input']}"},
                    {
                        "role": "assistant",
                        "content": lead.strip() or None,
                        "tool_calls": [{"id": f"call_{i}", "type": "function", "function": call}],
                    },
                ],
                "tools": [{"type": "function", "function": {"name": name, "parameters": {}}}],
            }
        )
    return out


def test_function_calling_records_keep_their_tool_calls(tmp_path: Path) -> None:
    """OpenAI function-calling records (real Toolformer calls, some with null content): nothing
    is flagged for a tool call's empty content, two records that differ only in the call's
    arguments are not duplicates, the OpenAI export is the input itself, and LLaMA-Factory gets
    `function_call` turns and a `tools` column."""
    objs = _function_calling(20)
    assert sum(o["messages"][1]["content"] is None for o in objs) >= 1
    twin = json.loads(json.dumps(objs[0]))
    args = '{"query": "Storming of the Bastille"}'
    twin["messages"][1]["tool_calls"][0]["function"]["arguments"] = args
    objs.append(twin)
    src = tmp_path / "calls.jsonl"
    src.write_text("".join(json.dumps(o) + "\n" for o in objs))
    res = tamis.clean(str(src), str(tmp_path / "out"), recipe="sft")
    reasons = [
        r["reason"]
        for line in (tmp_path / "out" / "rejected.jsonl").read_text().splitlines()
        for r in json.loads(line)["reasons"]
    ]
    assert not {"missing_field", "empty_field", "empty_assistant", "empty_answer"} & set(reasons)
    assert "duplicate" not in reasons and res.counts["input"] == 21
    done = export(tamis.read(str(src)), str(tmp_path / "oa.jsonl"), "openai")
    assert done.written == 21 and _lines(tmp_path / "oa.jsonl") == objs
    export(tamis.read(str(src)), str(tmp_path / "lf" / "calls.jsonl"), "llamafactory")
    first = _lines(tmp_path / "lf" / "calls.jsonl")[0]
    assert [t["from"] for t in first["conversations"]] == ["human", "function_call"]
    call = json.loads(first["conversations"][1]["value"])
    given = objs[0]["messages"][1]["tool_calls"][0]["function"]
    assert call == {"name": given["name"], "arguments": json.loads(given["arguments"])}
    assert json.loads(first["tools"])[0]["name"] == call["name"]
    info = json.loads((tmp_path / "lf" / "dataset_info.json").read_text())["calls"]
    assert info["columns"]["tools"] == "tools" and info["tags"]["function_tag"] == "function_call"
    # the same records from Parquet, where Arrow gives every message every field (null where it
    # had none: `"tool_calls": null` on each user turn): the same OpenAI export, no nulls added
    import pyarrow as pa
    import pyarrow.parquet as pq

    chats = [{"messages": o["messages"]} for o in objs]  # (Parquet takes no empty `parameters`)
    pq.write_table(pa.Table.from_pylist(chats), tmp_path / "calls.parquet")
    back = pq.read_table(tmp_path / "calls.parquet").to_pylist()
    assert back[0]["messages"][0]["tool_calls"] is None
    export(tamis.read(str(tmp_path / "calls.parquet")), str(tmp_path / "pq.jsonl"), "openai")
    assert _lines(tmp_path / "pq.jsonl") == chats


def test_convert_keeps_unreadable_lines(tmp_path: Path, gsm8k: list[dict]) -> None:
    """Lines that are not records (broken JSON, invalid UTF-8) go to <stem>.quarantine.jsonl
    with their line and error, as `tamis clean` keeps them: lines in = written + quarantined."""
    lines = [json.dumps(o).encode() for o in gsm8k[:20]]
    lines[4] = lines[4][:-9]  # cut inside the object
    lines[11] = b'{"instruction": "caf\xe9", "output": "x"}'  # Latin-1, not UTF-8
    src = tmp_path / "broken.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    res = runner.invoke(app, ["convert", str(src), "-o", str(tmp_path / "ok.jsonl.gz")])
    assert res.exit_code == 0, res.output
    q = _lines(tmp_path / "ok.quarantine.jsonl")
    assert [(x["line"], x["error"].split(":")[0].split(" (")[0]) for x in q] == [
        (5, "malformed JSON"),
        (12, "invalid UTF-8 at byte 20"),
    ]
    assert "reads as Windows-1252" in q[1]["error"]  # Latin-1's é is Windows-1252's too
    assert len(list(tamis.read(str(tmp_path / "ok.jsonl.gz")))) == 18
    assert "left out 2 unreadable lines" in " ".join(res.output.split())


def test_hugging_face_saved_datasets(tmp_path: Path, gsm8k: list[dict]) -> None:
    """A `Dataset.save_to_disk` folder (real gsm8k and banking77 rows, written by `datasets`
    itself) reads as its rows; `convert -o x.arrow` writes what `datasets` loads back; a
    `DatasetDict` folder stops with its splits named (exit 2)."""
    datasets = pytest.importorskip("datasets")
    rows = gsm8k[:200]
    with open(DATA / "banking77" / "test.csv", newline="") as fh:
        bank = list(csv.DictReader(fh))[:300]
    for name, data, fmt in (("gsm", rows, "alpaca"), ("bank", bank, "text_label")):
        datasets.Dataset.from_list(data).save_to_disk(str(tmp_path / name))
        reader = tamis.read(str(tmp_path / name))
        assert [r.to_raw() for r in reader] == data and reader.files[0].format == fmt
    res = runner.invoke(app, ["clean", str(tmp_path / "gsm"), "-o", str(tmp_path / "out"), "-q"])
    assert res.exit_code == 0, res.output
    counts = json.loads((tmp_path / "out" / "summary.json").read_text())["counts"]
    assert counts["input"] == 200 == counts["kept"] + counts["rejected"]
    res = runner.invoke(app, ["convert", str(tmp_path / "bank"), "-o", str(tmp_path / "b.arrow")])
    assert res.exit_code == 0, res.output
    assert datasets.Dataset.from_file(str(tmp_path / "b.arrow")).to_list() == bank
    splits = datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(rows), "test": datasets.Dataset.from_list(rows[:9])}
    )
    splits.save_to_disk(str(tmp_path / "dd"))
    res = runner.invoke(app, ["check", str(tmp_path / "dd")])
    said = " ".join(res.output.split())
    assert res.exit_code == 2 and "splits: train, test" in said and "dd/train" in said


def test_hugging_face_class_labels_read_as_their_names(tmp_path: Path) -> None:
    """A `ClassLabel` column (how `datasets` stores banking77's intents: numbers 0-76, the names
    in the schema's metadata) reads as its names, from a `save_to_disk` folder and from a
    Parquet file `datasets` wrote: the chat export's answer used to be "11" and the profile's
    classes numbers. -1, `datasets`' "no label", is no label. Writing back keeps the numbers."""
    datasets = pytest.importorskip("datasets")
    with open(DATA / "banking77" / "train.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))[::40][:150]
    names = sorted({r["category"] for r in rows})
    numbers = [names.index(r["category"]) for r in rows]
    numbers[7] = -1
    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=names)}
    )
    ds = datasets.Dataset.from_dict({"text": [r["text"] for r in rows], "label": numbers}, features)
    ds.save_to_disk(str(tmp_path / "saved"))
    ds.to_parquet(str(tmp_path / "b.parquet"))
    expected = [r["category"] for r in rows]
    expected[7] = None
    for src in (tmp_path / "saved", tmp_path / "b.parquet"):
        reader = tamis.read(str(src))
        records = list(reader)
        assert [r.label for r in records] == expected
        assert f"{len(names)} ClassLabel names" in reader.files[0].why
        write(records, str(tmp_path / "back.jsonl"))
        assert _lines(tmp_path / "back.jsonl") == ds.to_list()
        done = export(records, str(tmp_path / "oa.jsonl"), "openai")
        assert done.reasons == {"no_answer": 1}
        answers = [o["messages"][-1]["content"] for o in _lines(tmp_path / "oa.jsonl")]
        assert answers == expected[:7] + expected[8:]
    # a file without the metadata (a plain Parquet file of numbers) keeps its numbers
    import pyarrow.parquet as pq

    pq.write_table(
        pq.read_table(tmp_path / "b.parquet").replace_schema_metadata(None), tmp_path / "n.parquet"
    )
    assert [r.label for r in tamis.read(str(tmp_path / "n.parquet"))] == numbers


def test_a_byte_order_mark_is_not_part_of_the_data(tmp_path: Path, gsm8k: list[dict]) -> None:
    """Files saved with a UTF-8 byte-order mark (Excel's CSV, Windows editors) read as without
    one: the first JSONL record is not quarantined, the CSV's first column keeps its name."""
    jsonl = tmp_path / "gsm.jsonl"
    jsonl.write_text("".join(json.dumps(o) + "\n" for o in gsm8k[:30]))
    plain = [
        jsonl,
        DATA / "banking77" / "test.csv",
        DATA / "tweeteval" / "sentiment" / "val_text.txt",
    ]
    for path in plain:
        marked = tmp_path / f"bom_{path.name}"
        marked.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
        want, got = tamis.read(str(path)), tamis.read(str(marked))
        assert [r.to_raw() for r in got] == [r.to_raw() for r in want], marked.name
        assert not got.quarantined and got.files[0].format == want.files[0].format


def test_content_given_as_text_parts(tmp_path: Path, gsm8k: list[dict]) -> None:
    """OpenAI content as a list of parts: text parts read as their text (one part or several),
    a clean writes a fix back into the part, a round trip keeps the parts; a message with an
    image part stays a list, which `structure` drops and every export leaves out."""
    from tamis.records.exporters import EXPORTERS

    def msg(role: str, *texts: str, image: bool = False) -> dict:
        parts = [{"type": "text", "text": t} for t in texts]
        if image:
            parts.append({"type": "image_url", "image_url": {"url": "https://example.com/a.png"}})
        return {"role": role, "content": parts}

    rows = []
    for i, o in enumerate(gsm8k[:30]):
        user = [o["instruction"]] if i % 3 == 0 else ["Solve this.", o["instruction"]]
        answer = o["output"] + ("  " if i == 3 else "")  # trailing spaces: normalize fixes them
        rows.append({"messages": [msg("user", *user, image=i % 3 == 2), msg("assistant", answer)]})
    src = tmp_path / "parts.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recs = list(tamis.read(str(src)))
    assert recs[0].format == "openai"
    assert recs[0].turns[0].content == gsm8k[0]["instruction"]
    assert recs[0].turns[0].field == "messages[0].content[0].text"
    assert recs[1].turns[0].content == "Solve this.\n" + gsm8k[1]["instruction"]
    assert isinstance(recs[2].turns[0].content, list)  # the image part
    # no operator: the same objects, parts and all
    write(recs, str(tmp_path / "same.jsonl"))
    assert [json.loads(x) for x in (tmp_path / "same.jsonl").read_text().splitlines()] == rows
    res = tamis.clean(str(src), str(tmp_path / "out"), "sft")
    kept = [json.loads(x) for x in (tmp_path / "out" / "kept.jsonl").read_text().splitlines()]
    rejected = [
        json.loads(x) for x in (tmp_path / "out" / "rejected.jsonl").read_text().splitlines()
    ]
    assert {r["id"] for r in rejected} >= {f"parts.jsonl:{i + 1}" for i in range(2, 30, 3)}
    assert all(
        any(x["reason"] == "non_string" for x in r["reasons"])
        for r in rejected
        if int(r["id"].split(":")[1]) % 3 == 0
    )
    fixed = rows[3]["messages"][1]["content"][0]["text"].rstrip()
    fixed_row = {"messages": [rows[3]["messages"][0], msg("assistant", fixed)]}
    assert fixed_row in kept and all(k in rows or k == fixed_row for k in kept)
    assert res.counts["kept"] == len(kept) >= 15
    from tamis.evaluate.run import read_records

    said: list[str] = []
    assert len(read_records(str(src), echo=said.append)) == 20  # `tamis eval` leaves them out
    assert said == [
        "warning: 10 evaluation records hold non-text content (image, audio or file parts) and are "
        "left out"
    ]
    for to in EXPORTERS:
        done = export(tamis.read(str(src)), str(tmp_path / f"{to}.jsonl"), to)
        assert done.written == 20 and done.reasons == {"non_text": 10}, to
        assert "'type': 'text'" not in (tmp_path / f"{to}.jsonl").read_text()
    # the same messages as TRL's conversational prompt/completion read the same way
    pc = tmp_path / "pc.jsonl"
    pc.write_text(
        json.dumps({"prompt": rows[1]["messages"][:1], "completion": rows[1]["messages"][1:]})
        + "\n"
    )
    (rec,) = tamis.read(str(pc))
    assert rec.format == "prompt_completion"
    assert [t.content for t in rec.turns] == [recs[1].turns[0].content, recs[1].turns[1].content]
    assert rec.turns[1].field == "completion[0].content[0].text"


def test_null_columns_of_parquet_rows_are_absent_fields(tmp_path: Path, gsm8k: list[dict]) -> None:
    """Arrow gives every row every column, null where a row had none: a system prompt on 3 of
    20 real gsm8k rows made the other 17 `structure/missing_field` and gave their exports an
    empty system message; an `input` missing from half the rows is null too."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [
        dict(o) if i % 2 else {"instruction": o["instruction"], "output": o["output"]}
        for i, o in enumerate(gsm8k[:20])
    ]
    for r in rows[:3]:
        r["system"] = "You are a patient maths tutor."
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "g.parquet")
    res = tamis.clean(str(tmp_path / "g.parquet"), str(tmp_path / "out"), "sft")
    assert res.counts["kept"] == 20, (tmp_path / "out" / "rejected.jsonl").read_text()[:500]
    export(tamis.read(str(tmp_path / "g.parquet")), str(tmp_path / "oa.jsonl"), "openai")
    systems = [o["messages"][0]["role"] == "system" for o in _lines(tmp_path / "oa.jsonl")]
    assert systems == [True] * 3 + [False] * 17
    write(tamis.read(str(tmp_path / "g.parquet")), str(tmp_path / "back.parquet"))
    assert (
        pq.read_table(tmp_path / "back.parquet").to_pylist()
        == pq.read_table(tmp_path / "g.parquet").to_pylist()
    )


def test_inputs_of_several_formats_and_a_file_that_mixes_them(
    tmp_path: Path, gsm8k: list[dict]
) -> None:
    """Cleaned together, Alpaca and OpenAI inputs give a kept.jsonl that holds both, each record
    in its own format (said in a warning and in summary.json). Read again, for a second clean or
    a conversion, each row is read in its own format, past the 50 rows detection samples: the
    OpenAI rows used to be read as Alpaca rows without an output, so `convert --to openai` left
    them all out as `no_answer` and a second `tamis clean` dropped them as missing fields."""
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(o) + "\n" for o in gsm8k[:80]))
    chats = [
        {
            "messages": [
                {"role": "user", "content": o["instruction"]},
                {"role": "assistant", "content": o["output"]},
            ]
        }
        for o in gsm8k[80:140]
    ]
    (tmp_path / "b.jsonl").write_text("".join(json.dumps(o) + "\n" for o in chats))
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: structure-only\nops:\n  - structure: {}\n")
    first = tamis.clean(
        [str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")], str(tmp_path / "o1"), str(recipe)
    )
    assert first.counts["kept"] == 140
    assert first.summary["kept_formats"] == {"alpaca": 80, "openai": 60}
    (warning,) = [w for w in first.summary["warnings"] if "formats" in w]
    assert "alpaca 80, openai 60" in warning and "tamis convert" in warning
    kept = tmp_path / "o1" / "kept.jsonl"
    assert _lines(kept) == [*gsm8k[:80], *chats]
    records = list(tamis.read(str(kept)))
    assert [r.format for r in records] == ["alpaca"] * 80 + ["openai"] * 60
    assert [r.turns[-1].content for r in records] == [o["output"] for o in gsm8k[:140]]
    for workers in (1, 2):  # the second reads rows past the sample in the workers
        again = tamis.clean(str(kept), str(tmp_path / f"o{workers}w"), str(recipe), workers=workers)
        assert again.counts["kept"] == 140
        assert (tmp_path / f"o{workers}w" / "kept.jsonl").read_bytes() == kept.read_bytes()
    res = runner.invoke(
        app, ["convert", str(kept), "--to", "openai", "-o", str(tmp_path / "t.jsonl")]
    )
    assert res.exit_code == 0 and "left out" not in res.output, res.output
    assert [o["messages"][-1]["content"] for o in _lines(tmp_path / "t.jsonl")] == [
        o["output"] for o in gsm8k[:140]
    ]
    # a format that is given is the format of every row: no row is read in another
    forced = tamis.clean(str(kept), str(tmp_path / "o3"), str(recipe), format="alpaca")
    assert forced.counts["rejected"] == 60
