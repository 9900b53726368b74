"""Streaming readers (JSONL, JSON, CSV/TSV, Parquet, Arrow, TXT) and writers.

Text files may come compressed (gzip, bzip2, xz or zstd, found by their first bytes; `.gz`,
`.bz2`, `.xz`, `.zst` after the type's own extension): they are read through the decompressor as a
stream, and a writer whose path ends so compresses.

Readers stream: JSONL, CSV, TXT, Parquet and Arrow (a Hugging Face `save_to_disk` folder stands
for its Arrow files) are read a line / row group / batch at a time, and a JSON
array an element at a time, so memory does not grow with the file. A JSON object of arrays
(`{"data": [...]}`, columns) is one value and is parsed whole; prefer JSONL or an array for very
large data.

What stops a run raises `InputError` naming the file (and line): a missing path, a directory, an
empty or binary file, a JSON file that does not parse, a format that cannot be detected. What
affects one record goes to quarantine with its file, line and error, and the rest goes through.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import glob
import gzip
import io
import json
import lzma
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from tamis.errors import InputError
from tamis.records.formats import FORMATS, FieldMap, Format, detect_format, row_format
from tamis.records.model import Record, Source

DEFAULT_MAX_RECORD_BYTES = 4 * 1024 * 1024
SAMPLE_ROWS = 50
EXTENSIONS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".arrow": "arrow",
    ".txt": "txt",
}

BOM = b"\xef\xbb\xbf"
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zst": "zstd", ".zstd": "zstd"}
_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)

csv.field_size_limit(sys.maxsize)


def compression_of(path: str) -> str | None:
    """The compression of a file, from its first bytes (not its name): gzip, bz2, xz, zstd."""
    with open(path, "rb") as fh:
        head = fh.read(6)
    return next((kind for magic, kind in _MAGIC if head.startswith(magic)), None)


def data_extension(path: str) -> str:
    """The extension that says the type of the data: `.jsonl` for `train.jsonl.gz`."""
    stem, ext = os.path.splitext(path)
    if ext.lower() in COMPRESSIONS:
        ext = os.path.splitext(stem)[1]
    return ext.lower()


def beside(path: str, suffix: str) -> str:
    """A file next to `path` named after it: `beside("out/train.jsonl.gz", "skipped.jsonl")` is
    `out/train.skipped.jsonl`."""
    stem, ext = os.path.splitext(path)
    if ext.lower() in COMPRESSIONS:
        stem = os.path.splitext(stem)[0]
    return f"{stem}.{suffix}"


class _Decompressed(io.RawIOBase):
    """A decompressor's stream whose errors (a damaged or cut-off archive) name the file."""

    def __init__(self, fh: Any, path: str, kind: str) -> None:
        self._fh, self._path, self._kind = fh, path, kind

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        try:
            data = self._fh.read(len(b))
        except (OSError, EOFError, ValueError, lzma.LZMAError) as e:
            raise InputError(
                f"cannot decompress ({self._kind}): the file is damaged or cut off ({e})",
                self._path,
            ) from None
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._fh.close()
        super().close()


def _mark_undecodable(e: UnicodeError) -> tuple[str, int]:
    """A codec error handler: bytes the encoding has no character for become lone surrogates
    (U+DC00 + the byte), which UTF-8 cannot hold, so the line they stand in reads as invalid
    UTF-8 and is quarantined, and `_not_utf8` names the bytes; the rest of the file reads."""
    assert isinstance(e, UnicodeDecodeError)
    return "".join(chr(0xDC00 + b) for b in e.object[e.start : e.end]), e.end


codecs.register_error("tamis-undecodable", _mark_undecodable)


class _ToUtf8(io.RawIOBase):
    """A stream in another encoding (given, or UTF-16/32 by its byte-order mark) as UTF-8 bytes,
    decoded a block at a time, so that every reader (which reads UTF-8) takes it as it is; a
    byte-order mark is dropped, line breaks kept."""

    def __init__(self, fh: Any, encoding: str) -> None:
        self._fh = fh
        self._decoder = codecs.getincrementaldecoder(encoding)("tamis-undecodable")
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._pending:
            data = self._fh.read(1 << 16)
            text = self._decoder.decode(data, final=not data)
            self._pending = text.encode("utf-8", "surrogatepass")
            if not data:
                break
        n = min(len(b), len(self._pending))
        b[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def close(self) -> None:
        if not self.closed:
            self._fh.close()
        super().close()


# byte-order marks of the encodings Windows tools write as "Unicode" (Excel's Unicode Text and
# PowerShell's `>` are UTF-16 LE); UTF-32's first, since its LE mark begins as UTF-16's does
UNICODE_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)


def check_encoding(encoding: str | None) -> str | None:
    """The encoding's canonical name, None for UTF-8 (read as such), or an error for a name
    Python does not know."""
    if encoding is None:
        return None
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise InputError(
            f"unknown encoding '{encoding}' (e.g. cp1252, latin-1, utf-16, shift_jis)"
        ) from None
    return None if name in ("utf-8", "utf-8-sig") else name


def open_binary(path: str, encoding: str | None = None) -> io.BufferedIOBase:
    """The file's bytes as UTF-8, decompressed when it is gzip, bzip2, xz or zstd (pyarrow's
    codec), and decoded from `encoding` when one is given, or from UTF-16 or UTF-32 when a
    byte-order mark says so."""
    encoding = check_encoding(encoding)
    kind = compression_of(path)
    fh: Any
    if kind is None:
        fh = open(path, "rb")  # noqa: SIM115 - the caller closes it
    else:
        if kind == "zstd":
            import pyarrow as pa

            raw: Any = pa.input_stream(path, compression="zstd")
        else:
            raw = {"gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open}[kind](path, "rb")
        fh = io.BufferedReader(_Decompressed(raw, path, kind), 1 << 16)
    if encoding is None:
        head = fh.peek(4)[:4]
        encoding = next((enc for bom, enc in UNICODE_BOMS if head.startswith(bom)), None)
    return fh if encoding is None else io.BufferedReader(_ToUtf8(fh, encoding), 1 << 16)


def open_text_out(path: str, newline: str | None = None) -> Any:
    """A text file to write at `path`, compressed when its name ends in .gz, .bz2, .xz or .zst."""
    kind = COMPRESSIONS.get(os.path.splitext(path)[1].lower())
    if kind is None:
        return open(path, "w", encoding="utf-8", newline=newline)  # noqa: SIM115
    if kind == "zstd":
        import pyarrow as pa

        raw: Any = pa.output_stream(path, compression="zstd")
    else:
        raw = {"gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open}[kind](path, "wb")
    return io.TextIOWrapper(raw, encoding="utf-8", newline=newline)


@dataclass(slots=True)
class Quarantined:
    """Input that could not be read as a record."""

    source: str
    line: int
    error: str
    raw: str

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "line": self.line, "error": self.error, "raw": self.raw}


@dataclass(slots=True)
class Deferred:
    """A JSONL line read but not yet parsed: parsing happens where it is resolved (a worker).

    Sending raw lines to workers costs far less than pickling parsed records, and spreads the
    JSON parsing over every worker instead of the one process that reads.
    """

    path: str
    line: int
    raw: bytes
    format: str
    id_prefix: str
    fields: FieldMap
    given: bool = False  # the format was given (--format): every row is read in it

    def resolve(self) -> Record | Quarantined:
        return DeferredLines.of(self).resolve_lines()[0][0]


@dataclass(slots=True)
class DeferredLines:
    """Consecutive `Deferred` lines of one file, packed to cross to a worker: their shared fields
    once and the lines as two lists pickle 4x faster than as many objects (3 us a record less,
    between the reading process and the worker)."""

    path: str
    format: str
    id_prefix: str
    fields: FieldMap
    given: bool
    lines: list[int]
    raws: list[bytes]

    @classmethod
    def of(cls, d: Deferred) -> DeferredLines:
        return cls(d.path, d.format, d.id_prefix, d.fields, d.given, [d.line], [d.raw])

    def takes(self, d: Deferred) -> bool:
        """Whether `d` is the same file's, read the same way (then `add` it)."""
        return (
            d.path == self.path
            and d.format == self.format
            and d.id_prefix == self.id_prefix
            and d.given == self.given
            and d.fields is self.fields
        )

    def add(self, d: Deferred) -> None:
        self.lines.append(d.line)
        self.raws.append(d.raw)

    def resolve_lines(self) -> list[tuple[Record | Quarantined, str | None]]:
        """Each line's record (or what is wrong with it) and its JSON text as the input wrote it
        (no line end), which is what the record's JSON is until an operator changes it: writing
        that costs nothing, where serialising the object again costs more than parsing it did."""
        out: list[tuple[Record | Quarantined, str | None]] = []
        base = FORMATS[self.format]
        for line, raw in zip(self.lines, self.raws, strict=True):
            item = parse_jsonl_line(self.path, line, raw)
            if isinstance(item, Quarantined):
                out.append((item, None))
                continue
            fmt = base if self.given else row_format(base, item[1], self.fields)
            rec = fmt.to_record(
                item[1], Source(self.path, line), self.fields, f"{self.id_prefix}:{line}"
            )
            out.append((rec, raw.strip().decode("utf-8")))
        return out


def pack_deferred(items: list[Any]) -> list[Any]:
    """The items with each run of `Deferred` lines of one file as one `DeferredLines`."""
    out: list[Any] = []
    for x in items:
        if isinstance(x, Deferred):
            last = out[-1] if out else None
            if isinstance(last, DeferredLines) and last.takes(x):
                last.add(x)
            else:
                out.append(DeferredLines.of(x))
        else:
            out.append(x)
    return out


@dataclass
class FileInfo:
    """What was found in one input file."""

    path: str
    filetype: str
    format: str
    why: str
    id_prefix: str


def saved_dataset_files(folder: str) -> list[str] | None:
    """The Arrow files of a Hugging Face `Dataset.save_to_disk` folder, in order (None when the
    folder is not one). A `DatasetDict` folder names its splits in the error."""
    state = os.path.join(folder, "state.json")
    if os.path.isfile(state):
        try:
            with open(state, encoding="utf-8") as fh:
                files = [f["filename"] for f in json.load(fh)["_data_files"]]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise InputError(
                f"a saved Hugging Face dataset whose state.json is unreadable ({e})", folder
            ) from None
        return [os.path.join(folder, f) for f in files]
    splits = os.path.join(folder, "dataset_dict.json")
    if os.path.isfile(splits):
        try:
            with open(splits, encoding="utf-8") as fh:
                names = json.load(fh).get("splits", [])
        except (OSError, ValueError, AttributeError):
            names = []
        first = (
            os.path.join(folder.rstrip("/"), names[0]) if names else f"{folder.rstrip('/')}/train"
        )
        raise InputError(
            f"a saved Hugging Face DatasetDict (splits: {', '.join(names) or '?'}); pass one "
            f"split's folder, such as '{first}'",
            folder,
        )
    return None


def expand_paths(inputs: Iterable[str]) -> list[str]:
    """Expand globs; refuse missing paths and directories with a message that says what to do.
    A Hugging Face `save_to_disk` folder stands for its Arrow files."""
    out: list[str] = []
    for item in inputs:
        item = str(item)
        if any(c in item for c in "*?["):
            hits = sorted(p for p in glob.glob(item, recursive=True) if os.path.isfile(p))
            if not hits:
                raise InputError("no file matches this pattern", item)
            out.extend(hits)
        elif os.path.isdir(item):
            saved = saved_dataset_files(item)
            if saved is None:
                raise InputError(
                    f"is a directory; pass files or a glob such as '{item.rstrip('/')}/*.jsonl'",
                    item,
                )
            out.extend(saved)
        elif not os.path.exists(item):
            raise InputError("no such file", item)
        else:
            out.append(item)
    if not out:
        raise InputError("no input files given")
    return out


def sniff_filetype(path: str, encoding: str | None = None) -> str:
    """The file type from its extension, or from its first bytes; refuse binary files."""
    kind = compression_of(path)
    with open_binary(path) as fh:  # Parquet and Arrow first: `encoding` is for text files
        head = fh.read(8192)
    if not head:
        raise InputError("file is empty", path)
    if head[:6] == b"ARROW1" or (
        head[:4] == b"\xff\xff\xff\xff" and data_extension(path) == ".arrow"
    ):
        if kind:
            raise InputError(f"an Arrow file inside {kind}: decompress the file first", path)
        return "arrow"
    if head[:4] == b"PAR1":
        if kind:
            raise InputError(
                f"a Parquet file inside {kind}: Parquet compresses its own columns; "
                "decompress the file first",
                path,
            )
        return "parquet"
    if encoding is not None:
        with open_binary(path, encoding) as fh:
            head = fh.read(8192)
    if b"\x00" in head:
        for order, chars, nuls in (("le", head[0::2], head[1::2]), ("be", head[1::2], head[0::2])):
            if b"\x00" not in chars and nuls.count(0) > len(nuls) * 0.9:  # ASCII as UTF-16
                raise InputError(
                    f"looks like UTF-16 ({order.upper()}) text without a byte-order mark: "
                    f"convert it with `iconv -f utf-16{order} -t utf-8`",
                    path,
                )
        raise InputError(
            "looks like a binary file, not JSONL, JSON, CSV, TSV, TXT, Parquet or Arrow", path
        )
    ext = data_extension(path)
    if ext in EXTENSIONS:
        return EXTENSIONS[ext]
    first = head.removeprefix(BOM).lstrip()[:1]
    if first == b"[":
        return "json"
    if first == b"{":
        # one object per line, or one object spanning lines
        line = head.split(b"\n", 1)[0].strip()
        return "jsonl" if line.endswith(b"}") else "json"
    raise InputError(
        f"unknown file type '{ext or '(none)'}': use .jsonl, .json, .csv, .tsv, .parquet, "
        ".arrow or .txt",
        path,
    )


# --- raw readers: yield (line, obj) or a Quarantined --------------------------------------------


def _iter_jsonl_raw(
    path: str, max_bytes: int, encoding: str | None = None
) -> Iterator[tuple[int, bytes] | Quarantined]:
    """Non-blank lines of a JSONL file, unparsed; lines over the size limit are quarantined."""
    with open_binary(path, encoding) as fh:
        for n, raw in enumerate(fh, 1):
            if n == 1 and raw.startswith(BOM):  # a byte-order mark (Windows editors write one)
                raw = raw[len(BOM) :]
            if not raw.strip():
                continue
            if len(raw) > max_bytes:
                yield Quarantined(path, n, _too_big(len(raw), max_bytes), _preview(raw))
                continue
            yield n, raw


def parse_jsonl_line(path: str, n: int, raw: bytes) -> tuple[int, Any] | Quarantined:
    """One JSONL line as (line, object), or a Quarantined saying what is wrong with it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return Quarantined(path, n, _not_utf8(raw), raw.decode("utf-8", "replace"))
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        return Quarantined(path, n, f"malformed JSON: {e.msg} (column {e.colno})", text)
    if not isinstance(obj, dict):
        return Quarantined(path, n, f"expected a JSON object, got {type(obj).__name__}", text)
    return n, obj


def _iter_jsonl(
    path: str, max_bytes: int, encoding: str | None = None
) -> Iterator[tuple[int, Any] | Quarantined]:
    for item in _iter_jsonl_raw(path, max_bytes, encoding):
        yield item if isinstance(item, Quarantined) else parse_jsonl_line(path, *item)


def _iter_json(
    path: str, max_bytes: int, encoding: str | None = None
) -> Iterator[tuple[int, Any] | Quarantined]:
    with open_binary(path, encoding) as fh:
        head = fh.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"["):
        yield from _json_elements(_iter_json_array(path, encoding=encoding))
        return
    with open_binary(path, encoding) as fh:
        data = fh.read()
    try:
        value = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InputError(
            f"invalid UTF-8 at byte {e.start}; the file must be UTF-8", path, line
        ) from None
    except json.JSONDecodeError as e:
        raise _malformed(e.msg, e.colno, path, e.lineno) from None
    if isinstance(value, dict):
        lists = {k: v for k, v in value.items() if isinstance(v, list)}
        if len(lists) == 1 and all(isinstance(x, dict) for x in next(iter(lists.values()))):
            value = next(iter(lists.values()))  # {"data": [{...}, ...]}
        elif lists and len(lists) == len(value) and len({len(v) for v in lists.values()}) == 1:
            keys = list(lists)
            value = [dict(zip(keys, row, strict=True)) for row in zip(*lists.values(), strict=True)]
        elif len(lists) > 1 and len(lists) == len(value):
            # columns of a table that do not line up: pairing them would attach answers to the
            # wrong questions, and reading the object as one record would hide it
            sizes = ", ".join(f"{k} {len(v)}" for k, v in lists.items())
            raise InputError(f"an object of arrays whose arrays differ in length ({sizes})", path)
        else:
            value = [value]
    if not isinstance(value, list):
        raise InputError("expected a JSON array of objects or an object of arrays", path)
    yield from _json_elements((path, obj) for obj in value)


def _json_elements(values: Iterable[tuple[str, Any]]) -> Iterator[tuple[int, Any] | Quarantined]:
    """Number the elements of a JSON array (1, 2, ...: the `line` of ids) and check each."""
    for n, (path, obj) in enumerate(values, 1):
        if isinstance(obj, str):
            obj = {"text": obj}  # an array of strings reads as plain text
        if not isinstance(obj, dict):
            yield Quarantined(
                path, n, f"expected a JSON object, got {type(obj).__name__}", json.dumps(obj)
            )
            continue
        yield n, obj


def _malformed(msg: str, col: int, path: str, line: int) -> InputError:
    return InputError(
        f"malformed JSON: {msg} (column {col}); if it holds one object per line, name it .jsonl",
        path,
        line,
    )


JSON_CHUNK = 1 << 20
_WS = " \t\r\n"


def _iter_json_array(
    path: str, chunk: int | None = None, encoding: str | None = None
) -> Iterator[tuple[str, Any]]:
    """The elements of a top-level JSON array, one at a time: memory holds one chunk and one
    element, not the file. What does not parse stops the run with its line, as a whole parse
    would."""
    chunk = chunk or JSON_CHUNK
    decoder = json.JSONDecoder()
    utf8 = codecs.getincrementaldecoder("utf-8-sig")()
    buf, pos, line, read, eof = "", 0, 1, 0, False
    with open_binary(path, encoding) as fh:

        def more() -> None:
            nonlocal buf, pos, read, eof
            data = fh.read(chunk)
            try:
                text = utf8.decode(data, final=not data)
            except UnicodeDecodeError as e:
                at = read + e.start
                raise InputError(
                    f"invalid UTF-8 at byte {at}; the file must be UTF-8",
                    path,
                    line + buf.count("\n", pos),
                ) from None
            read += len(data)
            eof = not data
            buf = buf[pos:] + text
            pos = 0

        def skip_ws() -> None:
            nonlocal pos, line
            while True:
                end = pos
                while end < len(buf) and buf[end] in _WS:
                    end += 1
                line += buf.count("\n", pos, end)
                pos = end
                if pos < len(buf) or eof:
                    return
                more()

        def fail(msg: str) -> InputError:
            col = pos - (buf.rfind("\n", 0, pos) + 1) + 1
            return _malformed(msg, col, path, line)

        more()
        skip_ws()
        if buf[pos : pos + 1] != "[":
            raise fail("expected '['")
        pos += 1
        first = True
        while True:
            skip_ws()
            if pos >= len(buf):
                raise fail("the array is not closed")
            if buf[pos] == "]":
                pos += 1
                skip_ws()
                if pos < len(buf):
                    raise fail("extra data after the array")
                return
            if not first:
                if buf[pos] != ",":
                    raise fail("expected ',' or ']'")
                pos += 1
                skip_ws()
            while True:
                try:
                    obj, end = decoder.raw_decode(buf, pos)
                except json.JSONDecodeError as e:
                    if eof:
                        line += buf.count("\n", pos, e.pos)
                        pos = e.pos
                        raise fail(e.msg) from None
                    more()  # the element goes on in the next chunk
                    continue
                if end == len(buf) and not eof:
                    more()  # a number may go on in the next chunk
                    continue
                break
            line += buf.count("\n", pos, end)
            pos = end
            first = False
            yield path, obj


CSV_DELIMITERS = (";", "\t", "|")  # what a .csv file whose header has no comma may use instead


def _not_utf8(raw: bytes) -> str:
    """The quarantine error of a line that is not UTF-8: where, and the likely cause when the
    bytes read as Windows-1252 (what Excel and older Windows tools write): then every line with an
    accent is quarantined, and the fix is one option."""
    try:
        raw.decode("utf-8")
        at = 0
    except UnicodeDecodeError as e:
        at = e.start
    try:  # bytes the file's own encoding has no character for (see `_mark_undecodable`)
        text = raw.decode("utf-8", "surrogatepass")
        bad = [ord(c) - 0xDC00 for c in text if "\udc00" <= c <= "\udcff"]
    except UnicodeDecodeError:
        bad = []
    if bad:
        return f"{' '.join(f'0x{b:02x}' for b in bad)}: no character in the file's encoding"
    try:
        raw.decode("cp1252")
    except UnicodeDecodeError:
        return f"invalid UTF-8 at byte {at}"
    return (
        f"invalid UTF-8 at byte {at} (it reads as Windows-1252; if the file is in that encoding, "
        "give --encoding cp1252, or `iconv -f cp1252 -t utf-8` converts it)"
    )


def _iter_csv(
    path: str, delimiter: str, max_bytes: int, encoding: str | None = None
) -> Iterator[tuple[int, Any] | Quarantined]:
    text = io.TextIOWrapper(
        open_binary(path, encoding), encoding="utf-8-sig", errors="surrogateescape", newline=""
    )
    with text as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            raise InputError("file is empty", path) from None
        if delimiter == "," and len(header) == 1:
            # a spreadsheet in a locale whose decimal mark is the comma writes ';' between columns
            other = next((d for d in CSV_DELIMITERS if d in header[0]), None)
            if other:
                yield from _iter_csv(path, other, max_bytes, encoding)
                return
        seen: dict[str, int] = {}
        for col, name in enumerate(header, 1):
            if name in seen and name:  # a dict per row keeps only the last column of a name
                raise InputError(
                    f"the header names column {name!r} twice (columns {seen[name]} and {col}); "
                    "rename one",
                    path,
                    1,
                )
            seen[name] = col
        width = len(header)
        prev_line = reader.line_num
        for row in reader:
            line = prev_line + 1
            prev_line = reader.line_num
            if not row:
                continue
            raw = delimiter.join(row)
            if any(_has_surrogates(v) for v in row):
                error = _not_utf8(raw.encode("utf-8", "surrogateescape"))
                yield Quarantined(path, line, error, _clean_surrogates(raw))
                continue
            if len(row) != width:
                yield Quarantined(
                    path, line, f"row has {len(row)} fields, the header has {width}", raw
                )
                continue
            if len(raw) > max_bytes:
                yield Quarantined(path, line, _too_big(len(raw), max_bytes), raw[:1000])
                continue
            yield line, dict(zip(header, row, strict=True))


def _iter_txt(
    path: str, max_bytes: int, encoding: str | None = None
) -> Iterator[tuple[int, Any] | Quarantined]:
    with open_binary(path, encoding) as fh:
        for n, raw in enumerate(fh, 1):
            line = raw.rstrip(b"\r\n")  # blank lines stay records: line n is record n
            if n == 1 and line.startswith(BOM):
                line = line[len(BOM) :]
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                yield Quarantined(path, n, _not_utf8(line), line.decode("utf-8", "replace"))
                continue
            yield n, {"text": text}


def _iter_parquet(path: str, max_bytes: int) -> Iterator[tuple[int, Any] | Quarantined]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises several types for a broken file
        raise InputError(f"not a readable Parquet file ({e})", path) from None
    n = 0
    for batch in pf.iter_batches(batch_size=4096):
        for obj in batch.to_pylist():
            n += 1
            yield n, obj


def _label_name(label: Any, names: list[str]) -> Any:
    """A ClassLabel number as its name; -1 (what `datasets` writes for "no label", as in test
    splits) as no label; anything else as it is. The record's original object keeps the number,
    so writing back gives the file's own values."""
    if isinstance(label, int) and not isinstance(label, bool):
        if 0 <= label < len(names):
            return names[label]
        if label == -1:
            return None
    return label


def _open_arrow(path: str) -> tuple[Any, Iterable[Any]]:
    """An Arrow IPC file or stream (what Hugging Face `datasets` saves): its schema and its record
    batches, read one at a time."""
    import pyarrow as pa

    try:
        source = pa.memory_map(path)
        try:
            reader: Any = pa.ipc.open_file(source)
            batches: Iterable[Any] = (reader.get_batch(i) for i in range(reader.num_record_batches))
        except pa.ArrowInvalid:
            source.seek(0)
            reader = batches = pa.ipc.open_stream(source)
    except (OSError, pa.ArrowInvalid) as e:
        raise InputError(f"not a readable Arrow file ({e})", path) from None
    return reader.schema, batches


def class_label_names(path: str, filetype: str) -> dict[str, list[str]]:
    """The names of the Hugging Face `ClassLabel` columns of a Parquet or Arrow file, from the
    features `datasets` keeps in the schema's metadata: {column: names}. Such a column holds
    integers (banking77's `label` is 0-76); read as they are, they would be the answers of a chat
    export ("11") and the classes of a report."""
    if filetype not in ("parquet", "arrow"):
        return {}
    try:
        if filetype == "parquet":
            import pyarrow.parquet as pq

            schema = pq.read_schema(path)
        else:
            schema = _open_arrow(path)[0]
        features = json.loads((schema.metadata or {})[b"huggingface"])["info"]["features"]
    except Exception:  # noqa: BLE001 - no metadata, or not the shape datasets writes: no names
        return {}
    if not isinstance(features, dict):
        return {}
    return {
        col: list(f["names"])
        for col, f in features.items()
        if isinstance(f, dict) and f.get("_type") == "ClassLabel" and f.get("names")
    }


def _iter_arrow(path: str, max_bytes: int) -> Iterator[tuple[int, Any] | Quarantined]:
    """An Arrow IPC file or stream (what Hugging Face `datasets` saves), a batch at a time."""
    n = 0
    for batch in _open_arrow(path)[1]:
        for obj in batch.to_pylist():
            n += 1
            yield n, obj


def _too_big(size: int, limit: int) -> str:
    return (
        f"record is {size / 1e6:.1f} MB, over the {limit / 1e6:.1f} MB limit "
        "(raise it with --max-record-mb)"
    )


def _preview(raw: bytes) -> str:
    return raw[:1000].decode("utf-8", "replace")


def _has_surrogates(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _clean_surrogates(s: str) -> str:
    return s.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def iter_objects(
    path: str, filetype: str, max_bytes: int, encoding: str | None = None
) -> Iterator[tuple[int, Any] | Quarantined]:
    if filetype == "jsonl":
        return _iter_jsonl(path, max_bytes, encoding)
    if filetype == "json":
        return _iter_json(path, max_bytes, encoding)
    if filetype in ("csv", "tsv"):
        return _iter_csv(path, "\t" if filetype == "tsv" else ",", max_bytes, encoding)
    if filetype == "parquet":
        return _iter_parquet(path, max_bytes)
    if filetype == "arrow":
        return _iter_arrow(path, max_bytes)
    if filetype == "txt":
        return _iter_txt(path, max_bytes, encoding)
    raise InputError(f"unsupported file type {filetype}", path)


# --- the reader -------------------------------------------------------------------------------


@dataclass
class Reader:
    """Reads inputs as Records, file by file, quarantining what cannot be a record.

    Iterating gives Records; `items()` gives Records and Quarantined in input order, which is what
    the pipeline uses. `files` says what format was found in each file once it has been opened.
    """

    inputs: list[str]
    format: str | None = None
    fields: FieldMap = field(default_factory=FieldMap)
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    encoding: str | None = None  # the text files' encoding, when not UTF-8 (nor marked UTF-16)
    files: list[FileInfo] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.paths = expand_paths(self.inputs)
        if self.format is not None and self.format not in FORMATS:
            raise InputError(f"unknown format '{self.format}'; choose from {sorted(FORMATS)}")
        names = [os.path.basename(p) for p in self.paths]
        self._prefix = {
            p: (n if names.count(n) == 1 else p) for p, n in zip(self.paths, names, strict=True)
        }
        self.encoding = check_encoding(self.encoding)
        for p in self.paths:  # fail early, before any work, on files that cannot be read at all
            sniff_filetype(p, self.encoding)

    def __iter__(self) -> Iterator[Record]:
        for item in self.items():
            if isinstance(item, Record):
                yield item
            else:
                self.quarantined.append(item)

    def items(self, defer: bool = False) -> Iterator[Record | Quarantined | Deferred]:
        """Records and Quarantined in input order.

        With `defer`, JSONL lines after the first few come as `Deferred` (call `.resolve()`), so
        that the pipeline can parse them in its workers.
        """
        self.files = []
        for path in self.paths:
            yield from self._file_items(path, defer)

    def _file_items(self, path: str, defer: bool) -> Iterator[Record | Quarantined | Deferred]:
        filetype = sniff_filetype(path, self.encoding)
        lazy = defer and filetype == "jsonl"
        it: Iterator[Any] = (
            _iter_jsonl_raw(path, self.max_record_bytes, self.encoding)
            if lazy
            else iter_objects(path, filetype, self.max_record_bytes, self.encoding)
        )
        head = list(islice(it, SAMPLE_ROWS))
        if lazy:
            raw_head = head
            head = [x if isinstance(x, Quarantined) else parse_jsonl_line(path, *x) for x in head]
        objs = [x[1] for x in head if not isinstance(x, Quarantined)]
        if not objs and not head:
            raise InputError("file holds no records", path)
        fmt, why = self._pick_format(objs, path)
        names = class_label_names(path, filetype)
        if names and fmt is not None:
            col = (
                fmt.label_path(objs[0], self.fields) if objs and isinstance(objs[0], dict) else None
            )
            if col in names:
                why += f"; label numbers read as the {len(names[col])} ClassLabel names"
        info = FileInfo(path, filetype, fmt.name if fmt else "?", why, self._prefix[path])
        self.files.append(info)
        prefix = info.id_prefix
        given = self.format is not None

        def record(line: int, obj: Any) -> Record:
            assert fmt is not None
            row = fmt if given else row_format(fmt, obj, self.fields)
            rec = row.to_record(obj, Source(path, line), self.fields, f"{prefix}:{line}")
            if names and rec.label_path and rec.label_path[0] in names:
                rec.label = _label_name(rec.label, names[rec.label_path[0]])
            return rec

        for i, item in enumerate(head):
            if isinstance(item, Quarantined):
                yield item
            elif lazy:  # parsed to detect the format; parsed again where the rest is
                yield Deferred(path, item[0], raw_head[i][1], fmt.name, prefix, self.fields, given)
            else:
                yield record(*item)
        for item in it:
            if isinstance(item, Quarantined):
                yield item
                continue
            line, obj = item
            if fmt is None:
                raise InputError(
                    f"the first {SAMPLE_ROWS} rows are all unreadable, so the format cannot be "
                    "detected; fix them or give --format",
                    path,
                    line,
                )
            if lazy:
                yield Deferred(path, line, obj, fmt.name, prefix, self.fields, given)
            else:
                yield record(line, obj)

    def first_format(self) -> str | None:
        """The format of the first file (given or detected), to choose a default recipe."""
        if self.format:
            return self.format
        path = self.paths[0]
        head = list(
            islice(
                iter_objects(
                    path, sniff_filetype(path, self.encoding), self.max_record_bytes, self.encoding
                ),
                SAMPLE_ROWS,
            )
        )
        objs = [x[1] for x in head if not isinstance(x, Quarantined)]
        return detect_format(objs, self.fields, path)[0].name if objs else None

    def _pick_format(self, objs: list[Any], path: str) -> tuple[Format | None, str]:
        if self.format:
            return FORMATS[self.format], f"{self.format} (given)"
        if not objs:
            return None, "no readable rows in the first rows"
        return detect_format(objs, self.fields, path)


def read(
    inputs: str | Iterable[str],
    format: str | None = None,
    fields: FieldMap | None = None,
    encoding: str | None = None,
    **field_names: str,
) -> Reader:
    """Read one or many files or globs as Records: `for rec in tamis.read("data.jsonl"): ...`.

    Field names can be given as keywords: `read("x.csv", text_field="utterance")`; `encoding`
    reads text files that are not UTF-8 (`read("x.csv", encoding="cp1252")`).
    """
    if isinstance(inputs, str | os.PathLike):
        inputs = [str(inputs)]
    fields = fields or FieldMap(**field_names)
    return Reader(list(inputs), format=format, fields=fields, encoding=encoding)


# --- writers ----------------------------------------------------------------------------------


def dumps(obj: Any) -> str:
    """One JSON line as tamis writes it: UTF-8, no ASCII escaping, key order kept."""
    return json.dumps(obj, ensure_ascii=False)


def write(records: Iterable[Record], path: str, to: str = "same") -> int:
    """Write records to `path` (type from its extension) in their own format, or exported.

    `to` is "same" (the input's own fields) or an exporter name (see `tamis.records.exporters`:
    then as `export`, with its sidecar, and what the target would refuse in
    `<name>.skipped.jsonl`). Returns the number of objects written.
    """
    if to != "same":
        from tamis.records.exporters import export

        return export(records, path, to).written
    return write_objects((r.to_raw() for r in records), path)


def write_objects(objs: Iterable[Any], path: str) -> int:
    filetype = EXTENSIONS.get(data_extension(path), "jsonl")
    if filetype in ("parquet", "arrow") and os.path.splitext(path)[1].lower() in COMPRESSIONS:
        raise InputError(f"write .{filetype} uncompressed", path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    n = 0
    if filetype == "jsonl":
        with open_text_out(path) as fh:
            for o in objs:
                fh.write(dumps(o) + "\n")
                n += 1
    elif filetype == "json":
        items = list(objs)
        with open_text_out(path) as fh:
            json.dump(items, fh, ensure_ascii=False, indent=2)
        n = len(items)
    elif filetype in ("csv", "tsv"):
        items = list(objs)
        keys = list(dict.fromkeys(k for o in items for k in o))
        with open_text_out(path, newline="") as fh:
            w = csv.DictWriter(fh, keys, delimiter="\t" if filetype == "tsv" else ",")
            w.writeheader()
            w.writerows(items)
        n = len(items)
    elif filetype == "txt":
        with open_text_out(path) as fh:
            for o in objs:
                fh.write(str(o.get("text", "")) + "\n")
                n += 1
    elif filetype == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        items = list(objs)
        pq.write_table(pa.Table.from_pylist(items), path)
        n = len(items)
    elif filetype == "arrow":  # an IPC stream, as Hugging Face `datasets` writes them
        import pyarrow as pa

        items = list(objs)
        table = pa.Table.from_pylist(items)
        with pa.OSFile(path, "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
            w.write_table(table)
        n = len(items)
    return n
