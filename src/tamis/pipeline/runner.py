"""The runner: inputs -> operators -> kept / rejected / quarantine, with nothing lost.

Pass 1 streams batches of records through the operators on an executor. Each batch's result (output
lines, reasons, signals, changes, cross-record keys) is spilled to `OUT/.work/` as soon as it is
done, so memory stays bounded and `--resume` after a kill redoes only unfinished batches.
Then every cross-record operator decides once over all keys. Pass 2 reads the spills in order and
writes the outputs to temporary names, renamed into place at the end: a run either leaves complete
outputs or none, and the same input and recipe always give byte-identical files.
"""

from __future__ import annotations

import importlib
import json
import os
import pickle
import shutil
import sys
import tempfile
import time
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import numpy as np

from tamis.errors import TamisError
from tamis.ops.base import CrossContext, Decisions, Operator, Reason
from tamis.pipeline.arrow import arrow_array
from tamis.pipeline.cache import SignalCache, content_hash, default_cache_dir
from tamis.pipeline.executors import Executor, LocalExecutor
from tamis.pipeline.recipe import Recipe, recipe_for_format
from tamis.records.formats import FieldMap
from tamis.records.io import (
    DEFAULT_MAX_RECORD_BYTES,
    DeferredLines,
    Quarantined,
    Reader,
    dumps,
    pack_deferred,
)
from tamis.records.model import Record

OUTPUTS = (
    "kept.jsonl",
    "rejected.jsonl",
    "quarantine.jsonl",
    "changes.jsonl",
    "signals.parquet",
    "summary.json",
)
WORK = ".work"
SPILL_VERSION = 4


# --- worker side ------------------------------------------------------------------------------


@dataclass
class WorkerState:
    ops: list[Operator]
    cache: SignalCache | None
    work: str | None = None  # where batch results are spilled; None: return them whole
    wanted: list[str] = field(default_factory=list)  # signal columns cross-record ops need
    embeddings: bool = False  # gather an embedding per record for cross-record ops


def build_worker(spec: dict[str, Any]) -> WorkerState:
    """Build the operators from a recipe dict (runs once in every worker)."""
    for module in spec.get("modules", []):  # operators from outside tamis register on import
        importlib.import_module(module)
    recipe = Recipe.from_dict(spec["recipe"])
    ops = recipe.build()
    for op in ops:
        op.setup()
    cache = SignalCache(spec["cache_dir"]) if spec.get("cache_dir") else None
    return WorkerState(
        ops, cache, spec.get("work"), spec.get("wanted", []), spec.get("embeddings", False)
    )


def _signals(state: WorkerState, op: Operator, records: list[Record]) -> list[dict[str, Any]]:
    if not (op.cacheable and state.cache):
        return op.compute(records)
    fp = op.fingerprint()
    keys = [content_hash(r.content_key()) for r in records]
    found = state.cache.get_many(fp, keys)
    missing = [i for i, k in enumerate(keys) if k not in found]
    if missing:
        fresh = op.compute([records[i] for i in missing])
        new = {keys[i]: s for i, s in zip(missing, fresh, strict=True)}
        state.cache.put_many(fp, new)
        found.update(new)
    state.cache.hits += len(records) - len(missing)
    state.cache.misses += len(missing)
    return [found[k] for k in keys]


def process_batch(state: WorkerState, batch: tuple[int, list[Any]]) -> dict[str, Any]:
    """Run every operator over one batch and spill what pass 2 needs to write it.

    Returns only what the main process needs now (ids, cross-record keys, counts), so that batch
    results cross between processes once, as a file, not twice.
    """
    index, batch_items = batch
    resolved: list[tuple[Any, str | None]] = []
    for x in batch_items:  # JSONL lines come unparsed (see `pack_deferred`), the rest as read
        if isinstance(x, DeferredLines):
            resolved.extend(x.resolve_lines())
        else:
            resolved.append((x, None))
    records = [x for x, _ in resolved if isinstance(x, Record)]
    quarantined = [x.to_json() for x, _ in resolved if isinstance(x, Quarantined)]
    # each record's JSON as read: its JSONL line as is, else the object serialised
    orig = [line or dumps(x.raw) for x, line in resolved if isinstance(x, Record)]
    reasons: list[list[dict[str, Any]]] = [[] for _ in records]
    changes: list[str] = []
    signals: dict[str, list[Any]] = {}
    keys: dict[str, list[Any]] = {}
    timings: dict[str, float] = {}
    changed = [False] * len(records)
    for op in state.ops:
        t0 = time.perf_counter()
        if op.is_filter:
            sigs = _signals(state, op, records)
            for name in op.signals:
                signals[f"{op.name}.{name}"] = [s.get(name) for s in sigs]
            for i, (r, s) in enumerate(zip(records, sigs, strict=True)):
                reasons[i].extend(x.to_json() for x in op.decide(r, s))
        if op.is_mapper:
            for i, r in enumerate(records):
                for c in op.transform(r):
                    changes.append(dumps(c.to_json(r.id)))
                    changed[i] = True
        if op.is_cross:
            keys[op.name] = op.keys(records)
        timings[op.name] = time.perf_counter() - t0
    out = [dumps(r.to_raw()) if c else o for r, c, o in zip(records, changed, orig, strict=True)]
    if state.embeddings and records:
        t0 = time.perf_counter()
        from tamis.models.embeddings import embed_records

        embeddings = embed_records(records)
        timings["embeddings"] = time.perf_counter() - t0
    else:
        embeddings = None
    res = {
        "index": index,
        "ids": [r.id for r in records],
        "files": [r.source.file for r in records],
        "lines": [r.source.line for r in records],
        "orig": orig,
        "out": out,
        "formats": [r.format for r in records],
        "reasons": reasons,
        "changes": changes,
        "signals": signals,
        "keys": keys,
        "alive": [not r for r in reasons],
        "wanted": {k: signals.get(k, [None] * len(records)) for k in state.wanted},
        "embeddings": embeddings,
        "quarantined": quarantined,
        "timings": timings,
        "cache": (state.cache.hits, state.cache.misses) if state.cache else (0, 0),
    }
    if state.work is None:
        return res
    _spill_keys(state.work, index, res.pop("keys"))  # before the batch spill marks it done
    _spill(state.work, res)
    return _brief(res)


def _brief(res: dict[str, Any]) -> dict[str, Any]:
    """The part of a batch result the main process keeps in memory."""
    keep = ("index", "ids", "alive", "wanted", "embeddings", "timings", "cache")
    return {**{k: res[k] for k in keep}, "n_quarantined": len(res["quarantined"])}


# --- main side --------------------------------------------------------------------------------


@dataclass
class CleanResult:
    """What a clean run did: the summary (also in summary.json) and where the files are."""

    out: str
    summary: dict[str, Any]
    files: dict[str, str] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        return self.summary["counts"]


def _batches(items: Iterable[Any], size: int) -> Iterator[tuple[int, list[Any]]]:
    it = iter(items)
    index = 0
    while chunk := list(islice(it, size)):
        yield index, chunk
        index += 1


def _manifest(reader: Reader, recipe: Recipe, batch_size: int, opts: dict[str, Any]) -> dict:
    files = []
    for p in reader.paths:
        st = os.stat(p)
        files.append([os.path.abspath(p), st.st_size, st.st_mtime_ns])
    return {
        "spill_version": SPILL_VERSION,
        "recipe": recipe.fingerprint(),
        "inputs": files,
        "batch_size": batch_size,
        "options": opts,
    }


def _schema(ops: list[Operator]) -> Any:
    """The Arrow schema of signals.parquet. (Arrow is imported here and in _write_outputs, in the
    main process only: workers never need it, and it costs each ~40 MB.)"""
    import pyarrow as pa

    cols = [("id", pa.string()), ("file", pa.string()), ("line", pa.int64()), ("kept", pa.bool_())]
    for op in ops:
        if op.is_filter:
            for name, typ in op.signals.items():
                cols.append((f"{op.name}.{name}", pa.type_for_alias(typ)))
    return pa.schema(cols)


def _resolve_recipe(recipe: str | Recipe | None, reader: Reader) -> Recipe:
    if isinstance(recipe, Recipe):
        return recipe
    if recipe is None:
        fmt = reader.first_format()
        recipe = recipe_for_format(fmt) if fmt else "text"
    return Recipe.load(recipe)


def clean(
    inputs: str | list[str],
    out: str,
    recipe: str | Recipe | None = None,
    *,
    workers: int = 1,
    batch_size: int = 1000,
    resume: bool = False,
    format: str | None = None,
    fields: FieldMap | None = None,
    encoding: str | None = None,
    cache_dir: str | None = None,
    use_cache: bool = True,
    max_record_mb: float = DEFAULT_MAX_RECORD_BYTES / 1024 / 1024,
    progress: bool = False,
    executor: Executor | None = None,
    against: list[str] | None = None,
    reference: str | None = None,
) -> CleanResult:
    """Clean `inputs` with a recipe (default: the one for the detected format) into folder `out`.

    Writes kept.jsonl, rejected.jsonl, quarantine.jsonl, changes.jsonl, signals.parquet and
    summary.json. Records in = kept + rejected + quarantined, always. `against` (evaluation
    files) adds the `contamination` check; `reference` (examples or a description of the
    target domain) adds `relevance`. `encoding`: the text inputs' encoding when not UTF-8.
    """
    t_start = time.perf_counter()
    if isinstance(inputs, str):
        inputs = [inputs]
    max_bytes = int(max_record_mb * 1024 * 1024)
    reader = Reader(
        list(inputs),
        format=format,
        fields=fields or FieldMap(),
        max_record_bytes=max_bytes,
        encoding=encoding,
    )
    rec = _resolve_recipe(recipe, reader)
    if against:
        rec = rec.with_step("contamination", {"against": [os.path.abspath(p) for p in against]})
    if reference:
        rec = rec.with_step("relevance", {"reference": os.path.abspath(reference)})
    ops = rec.build()  # fails fast (unknown op, missing extra) before any work
    for op in ops:
        op.prepare()
    # a slow operator (a model pass per record) asks for small batches: work spreads over the
    # workers even on small inputs, and progress moves
    batch_size = min([batch_size, *(op.max_batch for op in ops if op.max_batch)])
    cache_path = (cache_dir or default_cache_dir()) if use_cache else None
    if cache_path:  # made (and set to WAL) here once, not by the workers all at once
        SignalCache(cache_path).close()
    work = os.path.join(out, WORK)
    cross_ops = [op for op in ops if op.is_cross]
    wanted = sorted({w for op in cross_ops for w in op.wanted_signals()})
    unknown = [w for w in wanted if w not in _schema(ops).names]
    if unknown:
        raise TamisError(f"the recipe asks for signals no operator gives: {', '.join(unknown)}")
    # operators registered outside tamis: the workers import their modules by name; one defined
    # in the running script (`__main__`) needs that script re-run in every worker
    modules = {type(op).__module__ for op in ops if not type(op).__module__.startswith("tamis.")}
    spec = {
        "recipe": rec.to_dict(),
        "modules": sorted(modules - {"__main__"}),
        "cache_dir": cache_path,
        "work": work,
        "wanted": wanted,
        "embeddings": any(op.uses_embeddings for op in cross_ops),
    }

    opts = {
        "format": format,
        "fields": vars(fields or FieldMap()),
        "max_record_bytes": max_bytes,
        "encoding": reader.encoding,
    }
    manifest = _manifest(reader, rec, batch_size, opts)
    mpath = os.path.join(work, "manifest.json")
    if resume and os.path.exists(mpath):
        with open(mpath, encoding="utf-8") as fh:
            if json.load(fh) != manifest:
                raise TamisError(
                    f"{out}: the inputs, recipe or options changed since the interrupted run; "
                    "run again without --resume"
                )
    else:
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work, exist_ok=True)
        with open(mpath, "w", encoding="utf-8") as fh:
            json.dump(manifest, fh)

    done = {int(f.split(".")[0]) for f in os.listdir(work) if f.endswith(".pkl")}
    executor = executor or LocalExecutor(workers, main="__main__" in modules)
    bar = _Progress(progress)  # started once the workers run: a forked one must not get its thread
    ids = IdTable()
    batch_records: list[int] = []  # records per batch, to place spilled keys
    alive: list[Any] = []  # one numpy bool chunk per batch
    wanted_cols: dict[str, list[Any]] = {w: [] for w in wanted}
    emb_chunks: list[Any] = []
    op_seconds: Counter[str] = Counter()
    cache_hits = cache_misses = 0

    def todo() -> Iterator[tuple[int, list[Any]]]:
        for index, items in _batches(reader.items(defer=True), batch_size):
            if index in done:
                bar.advance(len(items))
                continue
            yield index, pack_deferred(items)

    def absorb(res: dict[str, Any]) -> None:
        ids.extend(res["ids"])
        batch_records.append(len(res["ids"]))
        alive.append(np.asarray(res["alive"], dtype=bool))
        for w in wanted_cols:
            wanted_cols[w].extend(res["wanted"][w])
        if res.get("embeddings") is not None:
            emb_chunks.append(res["embeddings"])

    # pass 1: results arrive in batch order, done or not, so keys line up with ids
    next_index = 0
    finished = False
    try:
        results = executor.map(build_worker, spec, process_batch, todo())
        bar.start()
        for res in results:
            while next_index < res["index"]:  # batches finished by an earlier run
                absorb(_load(work, next_index))
                next_index += 1
            absorb(res)  # the worker has spilled it
            op_seconds.update(res["timings"])
            cache_hits += res["cache"][0]
            cache_misses += res["cache"][1]
            bar.advance(len(res["ids"]) + res["n_quarantined"])
            next_index = res["index"] + 1
        while next_index in done:
            absorb(_load(work, next_index))
            next_index += 1
        finished = True
    finally:
        if not finished:  # an error or an interrupt: stop the workers now
            executor.close()
        bar.stop()
    assert len(batch_records) == next_index  # one count per batch, resumed ones included

    # cross-record decisions, once over all keys, in recipe order
    decisions: list[Decisions] = []
    live = np.concatenate(alive) if alive else np.zeros(0, bool)
    alive.clear()
    signal_arrays = {w: _column(v) for w, v in wanted_cols.items()}
    embeddings = np.concatenate(emb_chunks) if emb_chunks else None
    emb_chunks.clear()
    # files cross-record ops write (clusters.jsonl), empty when they found nothing
    artifacts: dict[str, list[Any]] = {a: [] for op in cross_ops for a in op.artifacts}
    notes: dict[str, dict[str, Any]] = {}
    fixes: dict[int, list[tuple[tuple[Any, ...], Any]]] = {}
    for op in cross_ops:
        t0 = time.perf_counter()
        k = op.gather_keys(_key_chunks(work, op.name, batch_records), sum(batch_records), work)
        ctx = CrossContext(
            ids,
            live.copy(),
            {w: signal_arrays[w] for w in op.wanted_signals()},
            embeddings if op.uses_embeddings else None,
        )
        d = _as_decisions(op.name, op.decide_all(k, ctx))
        del k
        decisions.append(d)
        live[d.pos] = False
        for name, rows in ctx.artifacts.items():
            artifacts.setdefault(name, []).append(rows)
        if ctx.notes:
            notes[op.name] = ctx.notes
        for pos, fix in sorted(ctx.fixes.items()):
            fixes.setdefault(int(pos), []).append(fix)
        op_seconds[op.name] += time.perf_counter() - t0
    embeddings = signal_arrays = None
    executor.close()  # the workers left while the decisions ran: wait for the last of them

    summary = _write_outputs(
        out,
        work,
        batch_records,
        ops,
        decisions,
        ids,
        rec,
        reader,
        artifacts,
        notes,
        workers=getattr(executor, "workers", 1) or 1,
        fixes=fixes,
    )
    n_repeated, example = ids.repeated()
    if n_repeated:
        summary["warnings"].append(
            f"{n_repeated:,} ids name more than one record (such as {dumps(example)}): "
            "rejected.jsonl's duplicate_of and signals.parquet name records by id, so these are "
            "ambiguous; use --id-field with a field whose values are unique, or --id-field '' "
            "for file:line ids"
        )
    wall = time.perf_counter() - t_start
    summary["timings"] = {
        "wall_seconds": round(wall, 3),
        "records_per_second": round(summary["counts"]["input"] / wall, 1) if wall else None,
        "operator_seconds": {k: round(v, 3) for k, v in sorted(op_seconds.items())},
        "workers": getattr(executor, "workers", None),
        "signal_cache": {"hits": cache_hits, "misses": cache_misses, "path": cache_path},
    }
    _write_json(os.path.join(out, "summary.json"), summary)
    shutil.rmtree(work, ignore_errors=True)
    names = [*OUTPUTS, *artifacts]
    return CleanResult(out, summary, {name: os.path.join(out, name) for name in names})


class IdTable:
    """Record ids in input order, compactly: JSON text in one buffer plus offsets (~30 bytes an
    id instead of ~90 for a list of Python strings), so memory stays flat on large inputs."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._ends = array("q")

    def extend(self, ids: Iterable[Any]) -> None:
        buf, ends = self._buf, self._ends
        for rid in ids:
            if isinstance(rid, str) and rid.isprintable() and '"' not in rid and "\\" not in rid:
                buf += f'"{rid}"'.encode()  # what json.dumps gives, without its cost
            else:
                buf += dumps(rid).encode("utf-8", "surrogatepass")
            ends.append(len(buf))

    def __len__(self) -> int:
        return len(self._ends)

    def raw(self, i: int) -> str:
        """The id as JSON text (what `dumps(self[i])` gives)."""
        start = self._ends[i - 1] if i else 0
        return self._buf[start : self._ends[i]].decode("utf-8", "surrogatepass")

    def __getitem__(self, i: int) -> Any:
        if i < 0:
            i += len(self._ends)
        start = self._ends[i - 1] if i else 0
        end = self._ends[i]
        buf = self._buf
        if buf[start] == 34 and buf.find(b"\\", start, end) < 0:  # a string without escapes
            return buf[start + 1 : end - 1].decode("utf-8", "surrogatepass")
        return json.loads(buf[start:end].decode("utf-8", "surrogatepass"))

    def __iter__(self) -> Iterator[Any]:
        return (self[i] for i in range(len(self)))

    def repeated(self) -> tuple[int, Any]:
        """How many ids name more than one record, and one of them (None when all are unique):
        64-bit hashes of the JSON texts, so memory stays at 8 bytes an id."""
        buf, ends = bytes(self._buf), self._ends
        starts = [0, *ends[:-1]]
        h = np.fromiter(
            (hash(buf[a:b]) for a, b in zip(starts, ends, strict=True)), np.int64, len(ends)
        )
        _, first, counts = np.unique(h, return_index=True, return_counts=True)
        many = counts > 1
        if not many.any():
            return 0, None
        return int(many.sum()), self[int(first[many].min())]  # the first in input order


def _spill_keys(work: str, index: int, keys: dict[str, Any]) -> None:
    """One file per operator and batch: each operator's gather reads its own keys only (those of
    `endings` hold answer texts, which the dedup operators need not load)."""
    for name, value in keys.items():
        path = os.path.join(work, f"{index:07d}.{name}.keys")
        with open(path + ".tmp", "wb") as fh:
            pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(path + ".tmp", path)


def _key_chunks(work: str, name: str, batch_records: list[int]) -> Iterator[tuple[int, Any]]:
    """One operator's keys, batch by batch from the spills: (records in the batch, keys)."""
    for b, count in enumerate(batch_records):
        with open(os.path.join(work, f"{b:07d}.{name}.keys"), "rb") as fh:
            yield count, pickle.load(fh)


def _as_decisions(op: str, found: dict[int, Reason] | Decisions) -> Decisions:
    """Operators may answer a dict of Reasons (few) or Decisions arrays (many): one form here."""
    if isinstance(found, Decisions):
        if len(found.pos) > 1 and (np.diff(found.pos) <= 0).any():
            raise AssertionError(f"{op}: Decisions.pos must be sorted and unique")
        return found
    pos = np.array(sorted(found), dtype=np.int64)
    return _DictDecisions(op, "", pos, reasons=[found[int(p)] for p in pos])


@dataclass
class _DictDecisions(Decisions):
    reasons: list[Reason] = field(default_factory=list)

    def reason_at(self, k: int, ids: Any) -> Reason:
        return self.reasons[k]


def _column(values: list[Any]) -> Any:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


# what signals.parquet needs of a batch, spilled first: its writer reads no further
SIGNAL_PART = ("ids", "files", "lines", "reasons", "signals")


def _spill(work: str, res: dict[str, Any]) -> None:
    path = os.path.join(work, f"{res['index']:07d}.pkl")
    tmp = path + ".tmp"
    with open(tmp, "wb") as fh:
        pickle.dump({k: res[k] for k in SIGNAL_PART}, fh, protocol=pickle.HIGHEST_PROTOCOL)
        rest = {k: v for k, v in res.items() if k not in SIGNAL_PART}
        pickle.dump(rest, fh, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)


def _load(work: str, index: int, signals_only: bool = False) -> dict[str, Any]:
    with open(os.path.join(work, f"{index:07d}.pkl"), "rb") as fh:
        res = pickle.load(fh)
        if not signals_only:
            res.update(pickle.load(fh))
        return res


def _write_json(path: str, obj: Any) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, ensure_ascii=False, default=str)
        fh.write("\n")


class _CrossCursor:
    """Walks the cross-record decisions in record order, from record `pos0` on: the reasons of
    each record in one look, whichever record the walk starts at."""

    def __init__(self, decisions: list[Decisions], ids: Any, pos0: int) -> None:
        self.decisions, self.ids = decisions, ids
        self.pointer = [int(np.searchsorted(d.pos, pos0)) for d in decisions]
        self.heads = [
            int(d.pos[k]) if k < len(d.pos) else -1
            for d, k in zip(decisions, self.pointer, strict=True)
        ]

    def at(self, pos: int) -> list[tuple[str, str, str]]:
        """(op, reason, reason JSON) of the cross-record decisions on the record at `pos`."""
        found = []
        for j, d in enumerate(self.decisions):
            if self.heads[j] != pos:
                continue
            k = self.pointer[j]
            if isinstance(d, _DictDecisions):
                r = d.reasons[k]
                found.append((r.op, r.reason, dumps(r.to_json())))
            else:
                found.append((d.op, d.reason, d.reason_json(k, self.ids)))
            self.pointer[j] = k + 1
            self.heads[j] = int(d.pos[k + 1]) if k + 1 < len(d.pos) else -1
        return found


TALLIES = ("counts", "by_reason", "by_op", "changes", "q_errors", "kept_formats")


def _new_tally() -> dict[str, Counter]:
    return {t: Counter() for t in TALLIES}


def _write_batches(
    work: str,
    batches: Iterable[int],
    pos0: int,
    decisions: list[Decisions],
    ids: Any,
    paths: dict[str, str],
    signals: Any = None,
    fixes: dict[int, list[tuple[tuple[Any, ...], Any]]] | None = None,
) -> dict[str, Counter]:
    """Write the JSONL outputs of `batches` (consecutive; the first record of the first is at
    `pos0`) to `paths`; with a `signals(batch result, position of its first record)` writer also
    their signals. `fixes` (position -> [(path, Change)], from cross-record ops) edit the kept
    records they name. Returns the tallies for summary.json."""
    tally = _new_tally()
    cursor = _CrossCursor(decisions, ids, pos0) if decisions else None
    pos = pos0
    fh = {n: open(path, "w", encoding="utf-8") for n, path in paths.items()}  # noqa: SIM115
    try:
        for b in batches:
            res = _load(work, b)
            _write_batch(fh, tally, res, pos, cursor, ids, fixes)
            if signals is not None:
                signals(res, pos)
            pos += len(res["ids"])
    finally:
        for f in fh.values():
            f.close()
    return tally


def _write_batch(
    fh: dict[str, Any],
    tally: dict[str, Counter],
    res: dict[str, Any],
    pos: int,
    cursor: _CrossCursor | None,
    ids: Any,
    fixes: dict[int, list[tuple[tuple[Any, ...], Any]]] | None,
) -> None:
    """One batch's lines of the JSONL outputs; its first record is at `pos`."""
    counts, by_reason, by_op = tally["counts"], tally["by_reason"], tally["by_op"]
    kept_formats = tally["kept_formats"]
    late: list[str] = []  # changes.jsonl lines of cross-record fixes, after the mappers'
    for i in range(len(res["ids"])):
        local = res["reasons"][i]
        cross = cursor.at(pos) if cursor else []
        pos += 1
        if local or cross:
            # the same text as dumps(local + cross reasons), without re-encoding ids
            texts = [dumps(r) for r in local] + [c[2] for c in cross]
            fh["rejected.jsonl"].write(
                f'{{"id": {ids.raw(pos - 1)}, "record": {res["orig"][i]}, '
                f'"reasons": [{", ".join(texts)}]}}\n'
            )
            counts["rejected"] += 1
            pairs = [(r["op"], r["reason"]) for r in local] + [c[:2] for c in cross]
            for name in {op_name for op_name, _ in pairs}:
                by_op[name] += 1
            for op_name, code in pairs:
                by_reason[f"{op_name}/{code}"] += 1
        elif fixes and pos - 1 in fixes:
            obj = json.loads(res["out"][i])
            for path, change in fixes[pos - 1]:
                target = obj
                for key in path[:-1]:
                    target = target[key]
                target[path[-1]] = change.after
                late.append(dumps(change.to_json(ids[pos - 1])))
            fh["kept.jsonl"].write(dumps(obj) + "\n")
            counts["kept"] += 1
            kept_formats[res["formats"][i]] += 1
        else:
            fh["kept.jsonl"].write(res["out"][i] + "\n")
            counts["kept"] += 1
            kept_formats[res["formats"][i]] += 1
    for line in [*res["changes"], *late]:
        fh["changes.jsonl"].write(line + "\n")
        c = json.loads(line)
        tally["changes"][f"{c['op']}/{c['fix']}"] += 1
    for q in res["quarantined"]:
        fh["quarantine.jsonl"].write(dumps(q) + "\n")
        counts["quarantined"] += 1
        tally["q_errors"][q["error"].split(" (")[0].split(":")[0]] += 1


# pass 2 on two cores: a forked helper writes batches from the first on while this process
# writes them from the last back; only where fork is the platform's safe default and the input
# is not tiny
PARALLEL_WRITE_MIN_BATCHES = 4


def _claim(bounds: Any, front: bool) -> int | None:
    """The next unwritten batch from the front (the helper) or the back (this process)."""
    with bounds.get_lock():
        lo, hi = bounds[0], bounds[1]
        if lo >= hi:
            return None
        if front:
            bounds[0] = lo + 1
            return lo
        bounds[1] = hi - 1
        return hi - 1


def _write_half(conn: Any, before: Any, bounds: Any, *args: Any) -> None:
    try:
        before()
        batches = iter(lambda: _claim(bounds, True), None)
        conn.send(("ok", _write_batches(args[0], batches, 0, *args[1:])))
    except BaseException as e:  # noqa: BLE001 - reported by the parent
        conn.send(("error", f"{type(e).__name__}: {e}"))
    finally:
        conn.close()


def _write_in_two(
    work: str,
    batch_records: list[int],
    decisions: list[Decisions],
    ids: Any,
    paths: dict[str, str],
    before: Any,
    first: Any,
    fixes: dict[int, list[tuple[tuple[Any, ...], Any]]] | None = None,
) -> dict[str, Counter]:
    """`_write_batches` over all batches, the same bytes, on two cores. A forked process first
    calls `before` (the cross-record artifacts), then writes batches from the first on, straight
    to `paths`; this process first calls `first` (the signals: pyarrow stays out of the forked
    process), then writes batches from the last back, each to files of its own, appended in order
    once both meet. Taking batches as they go, neither waits for the other whatever the two
    extra jobs cost (clusters.jsonl is large when most records are duplicates)."""
    import multiprocessing as mp

    n = len(batch_records)
    starts = np.concatenate([[0], np.cumsum(batch_records)]).tolist()
    ctx = mp.get_context("fork")
    bounds = ctx.Array("q", [0, n])
    recv, send = ctx.Pipe(duplex=False)
    helper = ctx.Process(
        target=_write_half, args=(send, before, bounds, work, decisions, ids, paths, None, fixes)
    )
    helper.start()
    send.close()
    parts = {name: path + ".part" for name, path in paths.items()}
    spans: list[tuple[int, dict[str, tuple[int, int]]]] = []  # batch, where it is in each part

    status, got = "error", "this process failed first"
    tally = _new_tally()
    fh = {name: open(p, "w", encoding="utf-8") for name, p in parts.items()}  # noqa: SIM115
    try:
        first()
        while (b := _claim(bounds, False)) is not None:
            at = {name: f.tell() for name, f in fh.items()}  # UTF-8 text: a byte offset
            cursor = _CrossCursor(decisions, ids, starts[b]) if decisions else None
            _write_batch(fh, tally, _load(work, b), starts[b], cursor, ids, fixes)
            spans.append((b, {name: (at[name], f.tell()) for name, f in fh.items()}))
        try:
            status, got = recv.recv()
        except EOFError:  # the helper died without a word (killed)
            status, got = "error", f"the helper process ended with exit code {helper.exitcode}"
    finally:
        for f in fh.values():
            f.close()
        helper.join()
        if status != "ok":  # this process or the helper failed: no half-written parts left
            for p in parts.values():
                if os.path.exists(p):
                    os.remove(p)
    if status != "ok":
        raise TamisError(f"writing the outputs failed: {got}")
    first_tally = got
    spans.sort()  # written from the last batch back: appended from the first on
    for name, path in paths.items():
        with open(path, "ab") as dst, open(parts[name], "rb") as src:
            for _, where in spans:
                a, z = where[name]
                src.seek(a)
                dst.write(src.read(z - a))
        os.remove(parts[name])
    for t in TALLIES:
        first_tally[t].update(tally[t])
    return first_tally


def _write_outputs(
    out: str,
    work: str,
    batch_records: list[int],
    ops: list[Operator],
    decisions: list[Decisions],
    ids: Any,
    recipe: Recipe,
    reader: Reader,
    artifacts: dict[str, list[Any]],
    notes: dict[str, dict[str, Any]],
    workers: int = 1,
    fixes: dict[int, list[tuple[tuple[Any, ...], Any]]] | None = None,
) -> dict[str, Any]:
    schema = _schema(ops)

    def write_artifacts() -> None:
        for name, parts in artifacts.items():  # e.g. clusters.jsonl, made row by row here
            tmp_path = os.path.join(out, f".{name}.tmp")
            with open(tmp_path, "w", encoding="utf-8") as fa:
                for rows in parts:
                    for row in rows:  # dicts, or JSON text already made
                        fa.write((row if isinstance(row, str) else dumps(row)) + "\n")
            os.replace(tmp_path, os.path.join(out, name))

    tmp = {name: os.path.join(out, f".{name}.tmp") for name in OUTPUTS}
    jsonl = {n: tmp[n] for n in OUTPUTS if n.endswith(".jsonl")}
    import pyarrow as pa
    import pyarrow.parquet as pq

    # kept: no reason from the record's own operators nor from a cross-record decision
    cross_dropped = np.zeros(len(ids), bool)
    for d in decisions:
        cross_dropped[d.pos] = True

    def write_signals(writer: Any, res: dict[str, Any], first: int) -> None:
        dropped = cross_dropped[first : first + len(res["ids"])].tolist()
        cols: dict[str, Any] = {
            "id": [str(x) for x in res["ids"]],
            "file": res["files"],
            "line": res["lines"],
            "kept": [not (r or c) for r, c in zip(res["reasons"], dropped, strict=True)],
        }
        for name in schema.names[4:]:
            cols[name] = res["signals"].get(name, [None] * len(res["ids"]))
        arrays = [arrow_array(v, f.type) for v, f in zip(cols.values(), schema, strict=True)]
        writer.write_table(pa.Table.from_arrays(arrays, schema=schema))

    n_batches = len(batch_records)
    parallel = (
        workers > 1 and n_batches >= PARALLEL_WRITE_MIN_BATCHES and sys.platform.startswith("linux")
    )
    if parallel:

        def all_signals() -> None:  # opened after the fork: the helper never holds the writer
            with pq.ParquetWriter(tmp["signals.parquet"], schema) as writer:
                first = 0
                for b in range(n_batches):
                    write_signals(writer, _load(work, b, signals_only=True), first)
                    first += batch_records[b]

        tally = _write_in_two(
            work, batch_records, decisions, ids, jsonl, write_artifacts, all_signals, fixes
        )
    else:
        write_artifacts()
        with pq.ParquetWriter(tmp["signals.parquet"], schema) as writer:
            tally = _write_batches(
                work,
                range(n_batches),
                0,
                decisions,
                ids,
                jsonl,
                lambda res, first: write_signals(writer, res, first),
                fixes,
            )
    for name in OUTPUTS:
        if name != "summary.json":
            os.replace(tmp[name], os.path.join(out, name))
    counts, by_reason, by_op = tally["counts"], tally["by_reason"], tally["by_op"]
    change_counts, q_errors = tally["changes"], tally["q_errors"]
    n_in = counts["kept"] + counts["rejected"] + counts["quarantined"]
    operators = []
    for op in ops:
        mine = {
            k.split("/", 1)[1]: v
            for k, v in sorted(by_reason.items())
            if k.startswith(op.name + "/")
        }
        fixes = {
            k.split("/", 1)[1]: v
            for k, v in sorted(change_counts.items())
            if k.startswith(op.name + "/")
        }
        entry = {"op": op.name, "rejected": by_op[op.name], "reasons": mine, "changes": fixes}
        if op.name in notes:
            entry["notes"] = notes[op.name]
        operators.append(entry)
    return {
        "tamis_version": _version(),
        "recipe": recipe.name,
        "recipe_fingerprint": recipe.fingerprint(),
        "inputs": [
            {"path": f.path, "type": f.filetype, "format": f.format, "detected": f.why}
            for f in reader.files
        ],
        "counts": {
            "input": n_in,
            "kept": counts["kept"],
            "rejected": counts["rejected"],
            "quarantined": counts["quarantined"],
        },
        "operators": operators,
        "quarantine_errors": dict(sorted(q_errors.items())),
        "kept_formats": dict(tally["kept_formats"].most_common()),
        "warnings": [*recipe.warnings, *_mixed_warning(out, tally["kept_formats"])],
    }


def _mixed_warning(out: str, formats: Counter) -> list[str]:
    """A warning when kept.jsonl holds records of several formats (inputs of different formats,
    or a file that mixes them): each record stays in its own, which no trainer reads as one."""
    if len(formats) < 2:
        return []
    said = ", ".join(f"{name} {n:,}" for name, n in formats.most_common())
    kept = os.path.join(out, "kept.jsonl")
    return [
        f"kept.jsonl holds records of {len(formats)} formats ({said}), each in its own; for one "
        f"training file: tamis convert {kept} --to openai -o train.jsonl"
    ]


def _version() -> str:
    from tamis import __version__

    return __version__


class _Progress:
    """A rich progress line on stderr for long runs; silent when not wanted or not a terminal."""

    def __init__(self, enabled: bool):
        self.p = None
        if enabled and sys.stderr.isatty():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self.p = Progress(
                SpinnerColumn(),
                TextColumn("cleaning"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("records"),
                TimeElapsedColumn(),
                transient=True,
            )
            self.task = self.p.add_task("clean", total=None)

    def start(self) -> None:
        if self.p:
            self.p.start()

    def advance(self, n: int) -> None:
        if self.p:
            self.p.advance(self.task, n)

    def stop(self) -> None:
        if self.p:
            self.p.stop()


# --- check --------------------------------------------------------------------------------------


@dataclass
class CheckResult:
    """Findings of a check run, by type, with a few examples each."""

    summary: dict[str, Any]
    findings: dict[str, dict[str, Any]]
    total: int
    input: int


def check(
    inputs: str | list[str],
    recipe: str | Recipe | None = None,
    *,
    examples: int = 3,
    **kwargs: Any,
) -> CheckResult:
    """Run a recipe without keeping a dataset: what would be dropped or quarantined, and why."""
    with tempfile.TemporaryDirectory(prefix="tamis-check-") as tmp:
        res = clean(inputs, tmp, recipe, **kwargs)
        findings: dict[str, dict[str, Any]] = {}
        with open(res.files["rejected.jsonl"], encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                for r in row["reasons"]:
                    f = findings.setdefault(
                        f"{r['op']}/{r['reason']}", {"count": 0, "examples": []}
                    )
                    f["count"] += 1
                    if len(f["examples"]) < examples:
                        text = _focus(row["record"], r, kwargs.get("format"), kwargs.get("fields"))
                        f["examples"].append({"id": row["id"], "text": text})
        with open(res.files["quarantine.jsonl"], encoding="utf-8") as fh:
            for line in fh:
                q = json.loads(line)
                f = findings.setdefault("quarantine/unreadable", {"count": 0, "examples": []})
                f["count"] += 1
                if len(f["examples"]) < examples:
                    f["examples"].append({"id": f"{q['source']}:{q['line']}", "text": q["error"]})
    c = res.summary["counts"]
    return CheckResult(
        res.summary, dict(sorted(findings.items())), c["rejected"] + c["quarantined"], c["input"]
    )


def _focus(obj: Any, reason: dict[str, Any], fmt: str | None, fields: FieldMap | None) -> str:
    """What a person needs to see of a finding: the end of a cut answer, the prompt and the
    answer for the rest (most findings are about the answer, which a JSON prefix never shows),
    the record a duplicate copies; the raw object where the record cannot be read."""
    from tamis.records.formats import FORMATS, detect_format
    from tamis.records.model import Source

    fields = fields or FieldMap()
    try:
        form = FORMATS[fmt] if fmt else detect_format([obj], fields, "")[0]
        rec = form.to_record(obj, Source("", 0), fields, "")
    except Exception:  # noqa: BLE001 - an example is a courtesy; the raw object will do
        return _snippet(obj)
    answer = " ".join(" ".join(rec.texts("assistant")).split())
    prompt = " ".join(" ".join(t.text for t in rec.turns if t.role != "assistant").split())
    if "duplicate_of" in reason:
        head = f"copy of {reason['duplicate_of']}: "
    elif reason.get("detail") and reason["reason"] != "truncated":
        head = f"({reason['detail']}) "
    else:
        head = ""
    if reason["reason"] == "truncated" and answer:
        return head + "… " + answer[-90:]
    if answer and prompt:
        body = f"{_snippet(prompt, 45)} ⇒ {_snippet(answer, 65)}"
    else:
        body = _snippet(answer or prompt or obj)
    if rec.label is not None:
        body += f" [label: {rec.label}]"
    return head + body


def _snippet(obj: Any, n: int = 100) -> str:
    text = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"
