"""Operators: small classes registered by name, composed by a recipe.

Three kinds, all seeing batches of Records:

- a **mapper** changes text it is sure it can fix (`transform`), and logs each change;
- a **filter** computes per-record *signals* (`compute`, batched; cached when expensive) and then
  *decides* from them with thresholds (`decide`). Scoring and deciding are apart, so a threshold
  can be re-tuned without recomputing (Data-Juicer, Dolma: annotate first, decide later);
- a **cross-record** operator needs the whole dataset: while streaming it computes a compact `key`
  per record, the runner gathers every key, and `decide_all` makes one decision over all of them
  (exact dedup now; MinHash, embeddings and label noise later use the same two passes).

An operator may be more than one kind (PII both redacts and flags). It never manages passes,
workers, caching or output files: the runner does.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from tamis.errors import RecipeError
from tamis.records.model import Record, Turn


@dataclass(frozen=True)
class Param:
    """A declared operator parameter. `compute=True` means it changes the signals (cache key)."""

    default: Any
    help: str
    compute: bool = False


@dataclass(slots=True)
class Reason:
    """Why a record is dropped: the operator, a short code, and the evidence."""

    op: str
    reason: str
    score: float | None = None
    duplicate_of: Any = None
    detail: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op, "reason": self.reason}
        if self.score is not None:
            out["score"] = round(float(self.score), 4)
        if self.duplicate_of is not None:
            out["duplicate_of"] = self.duplicate_of
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass(slots=True)
class Change:
    """One edit a mapper made to one field of one record."""

    op: str
    field: str
    fix: str
    before: Any
    after: Any

    def to_json(self, rid: Any) -> dict[str, Any]:
        return {
            "id": rid,
            "op": self.op,
            "field": self.field,
            "fix": self.fix,
            "before": self.before,
            "after": self.after,
        }


@dataclass
class CrossContext:
    """What a cross-record decision sees besides its own keys (all in input order)."""

    ids: Sequence[Any]
    alive: Any  # numpy bool: not already dropped by a per-record or an earlier cross-record op
    signals: dict[str, Any] = field(default_factory=dict)  # wanted signal columns (numpy)
    embeddings: Any = None  # (records, dim) float32, when an op uses embeddings
    artifacts: dict[str, Any] = field(default_factory=dict)  # extra JSONL files: iterables of rows
    notes: dict[str, Any] = field(default_factory=dict)  # what the op reports in summary.json
    # edits to records the op keeps (a relabel): position -> (JSON path in the record's own
    # object, the logged Change); applied when kept.jsonl is written, listed in changes.jsonl
    fixes: dict[int, tuple[tuple[Any, ...], Change]] = field(default_factory=dict)


_CHUNK = 65536


def json_number(x: float) -> str:
    """A float as `json.dumps` writes it (NaN and infinities included), without its cost."""
    return repr(x) if math.isfinite(x) else json.dumps(x)


@dataclass
class Decisions:
    """Compact cross-record decisions: the records at `pos` (sorted positions) are dropped.

    Arrays instead of one Reason object per record, so that a data set with a million duplicates
    costs a few arrays; `reason_at` makes the Reason when its line is written.
    """

    op: str
    reason: str
    pos: Any  # int64, sorted
    score: Any = None  # float per position
    dup_of: Any = None  # int64 position of the record each duplicates
    detail: list[str] | None = None

    _chunk: Any = field(default=None, init=False, repr=False, compare=False)

    def reason_json(self, k: int, ids: Any) -> str:
        """`json.dumps(self.reason_at(k, ids).to_json())`, made directly: a data set with a
        million duplicates writes a million of these. `ids` gives raw JSON by `ids.raw(i)`."""
        chunk = self._chunk
        if chunk is None or not chunk[0] <= k < chunk[0] + _CHUNK:
            # Python lists of a slice at a time: indexing numpy per call is slow, and lists of
            # every position would cost ~60 bytes a duplicate
            a = k - k % _CHUNK
            chunk = self._chunk = (
                a,
                f'{{"op": {json.dumps(self.op)}, "reason": {json.dumps(self.reason)}',
                None
                if self.score is None
                else np.asarray(self.score[a : a + _CHUNK], float).tolist(),
                None if self.dup_of is None else np.asarray(self.dup_of[a : a + _CHUNK]).tolist(),
            )
        start, head, scores, dups = chunk
        parts = [head]
        if scores is not None:
            parts.append(f', "score": {json_number(round(scores[k - start], 4))}')
        if dups is not None:
            raw = ids.raw(dups[k - start])
            if raw != "null":
                parts.append(f', "duplicate_of": {raw}')
        if self.detail is not None and self.detail[k]:
            parts.append(f', "detail": {json.dumps(self.detail[k], ensure_ascii=False)}')
        parts.append("}")
        return "".join(parts)

    def reason_at(self, k: int, ids: Sequence[Any]) -> Reason:
        return Reason(
            self.op,
            self.reason,
            None if self.score is None else float(self.score[k]),
            duplicate_of=None if self.dup_of is None else ids[int(self.dup_of[k])],
            detail=None if self.detail is None else self.detail[k],
        )


class Operator:
    """Base class. Subclasses set the class attributes and override what they do."""

    name: ClassVar[str]
    description: ClassVar[str]  # what it catches, one line, for `tamis ops`
    params: ClassVar[dict[str, Param]] = {}
    signals: ClassVar[dict[str, str]] = {}  # signal name -> Arrow type name
    reasons: ClassVar[dict[str, str]] = {}  # reason code -> meaning
    requires: ClassVar[tuple[str, ...]] = ()  # importable modules it needs
    extra: ClassVar[str | None] = None  # the pip extra that installs them
    cacheable: ClassVar[bool] = False  # signals worth caching (model-based, slow)
    version: ClassVar[int] = 1  # bump when compute() changes, to invalidate the cache
    max_batch: ClassVar[int | None] = None  # records per batch at most (slow operators)

    def __init__(self, **params: Any):
        unknown = set(params) - set(self.params)
        if unknown:
            raise RecipeError(
                f"operator '{self.name}' has no parameter {sorted(unknown)}; "
                f"it takes {sorted(self.params)}"
            )
        self.p: dict[str, Any] = {k: params.get(k, v.default) for k, v in self.params.items()}

    # --- what an operator may implement ---------------------------------------------------------
    def prepare(self) -> None:
        """One-time work in the main process before workers start (e.g. a model converted into
        the cache), so that workers do not each repeat it at once."""

    def setup(self) -> None:
        """Load models and compile what is expensive; called once per worker."""

    def transform(self, record: Record) -> list[Change]:
        """Mapper: edit the record's turns in place; return what changed."""
        return []

    def compute(self, records: list[Record]) -> list[dict[str, Any]]:
        """Filter: signals per record for a batch (vectorise here)."""
        return [{} for _ in records]

    def decide(self, record: Record, signals: dict[str, Any]) -> list[Reason]:
        """Filter: reasons to drop the record, from its signals and this op's thresholds."""
        return []

    def key(self, record: Record) -> Any:
        """Cross-record: a compact key per record, computed while streaming."""
        return None

    def keys(self, records: list[Record]) -> Any:
        """Cross-record: the keys of a batch (vectorise here). A list, a numpy array (rows are
        records), or a dict of those; the runner concatenates batches in input order."""
        return [self.key(r) for r in records]

    key_dtype: ClassVar[str | None] = None  # numpy dtype of list keys, to store them compactly
    uses_embeddings: ClassVar[bool] = False  # the runner gathers one embedding per record
    artifacts: ClassVar[tuple[str, ...]] = ()  # extra files decide_all writes (via ctx.artifacts)

    def gather_keys(self, chunks: Iterable[tuple[int, Any]], n: int, work: str) -> Any:
        """Cross-record: every batch's keys, as (records in the batch, keys) in input order, into
        what `decide_all` takes. The default stacks them in memory; an operator whose keys grow
        large may keep them in files under `work` (removed when the run ends)."""
        return stack_keys(chunks, n, self.key_dtype)

    def wanted_signals(self) -> list[str]:
        """Cross-record: signal columns (`op.signal`) decide_all needs, e.g. for a keep policy."""
        return []

    def decide_all(self, keys: Any, ctx: CrossContext) -> dict[int, Reason] | Decisions:
        """Cross-record: given every key in input order, reasons by position (a dict, or
        `Decisions` arrays when there may be many)."""
        return {}

    # --- derived --------------------------------------------------------------------------------
    @property
    def is_mapper(self) -> bool:
        return type(self).transform is not Operator.transform

    @property
    def is_filter(self) -> bool:
        return type(self).compute is not Operator.compute

    @property
    def is_cross(self) -> bool:
        return type(self).decide_all is not Operator.decide_all

    def fingerprint(self) -> str:
        """Name, version and the parameters that change signals: the signal-cache key."""
        cp = {k: self.p[k] for k, v in self.params.items() if v.compute}
        blob = json.dumps([self.name, self.version, cp], sort_keys=True, default=str)
        return hashlib.blake2b(blob.encode(), digest_size=8).hexdigest()

    @classmethod
    def available(cls) -> bool:
        return all(importlib.util.find_spec(m) is not None for m in cls.requires)

    @classmethod
    def missing_message(cls) -> str:
        return (
            f"operator '{cls.name}' needs {', '.join(cls.requires)}: "
            f"pip install 'tamis[{cls.extra}]'"
        )


def stack_keys(chunks: Iterable[tuple[int, Any]], n: int, dtype: str | None = None) -> Any:
    """Batches' keys into one list, array, or dict of those, allocated once for all `n` records
    (memory is the final keys, not twice them); list keys become arrays of `dtype` when given."""
    out: Any = None
    pos = 0
    for count, chunk in chunks:
        if out is None:
            out = _alloc(chunk, n, dtype)
        _put(out, chunk, pos, dtype)
        pos += count
    return out if out is not None else _alloc([], 0, dtype)


def _alloc(chunk: Any, n: int, dtype: str | None) -> Any:
    if isinstance(chunk, dict):
        return {f: _alloc(v, n, None) for f, v in chunk.items()}
    if isinstance(chunk, np.ndarray):
        return np.empty((n, *chunk.shape[1:]), chunk.dtype)
    return np.empty(n, dtype) if dtype else []


def _put(out: Any, chunk: Any, pos: int, dtype: str | None) -> None:
    if isinstance(out, dict):
        for f in out:
            _put(out[f], chunk[f], pos, None)
    elif isinstance(out, np.ndarray):
        out[pos : pos + len(chunk)] = np.asarray(chunk, dtype=out.dtype)
    else:
        out.extend(chunk)


REGISTRY: dict[str, type[Operator]] = {}


def register(cls: type[Operator]) -> type[Operator]:
    """Class decorator: make an operator available to recipes under its `name`."""
    if cls.name in REGISTRY:
        raise RecipeError(f"two operators named '{cls.name}'")
    REGISTRY[cls.name] = cls
    return cls


def get_operator(name: str) -> type[Operator]:
    _load_builtin()
    if name not in REGISTRY:
        raise RecipeError(f"unknown operator '{name}'; `tamis ops` lists them: {sorted(REGISTRY)}")
    return REGISTRY[name]


def all_operators() -> dict[str, type[Operator]]:
    _load_builtin()
    return dict(REGISTRY)


def _load_builtin() -> None:
    from tamis.ops import (  # noqa: F401
        arithmetic,
        contamination,
        dedup,
        endings,
        heuristics,
        labels,
        language,
        near_dedup,
        normalize,
        offensive,
        pii,
        relevance,
        semantic,
        structure,
        token_length,
        truncation_lm,
    )


# --- helpers shared by operators ----------------------------------------------------------------


def text_turns(record: Record, roles: tuple[str, ...] | None = None) -> list[Turn]:
    """Turns with string content, optionally of some roles only."""
    return [
        t for t in record.turns if isinstance(t.content, str) and (roles is None or t.role in roles)
    ]


def record_text(record: Record) -> str:
    """All string turns of a record, in order, and the tool calls it makes: what near-duplicate
    checks and embeddings compare."""
    parts = []
    for t in record.turns:
        if isinstance(t.content, str) and t.content:
            parts.append(t.content)
        if t.extra and t.calls_tools:
            parts.append(t.calls_text)
    return "\n".join(parts)


def joined(record: Record, roles: tuple[str, ...]) -> str:
    """The text of all turns of these roles, joined by blank lines."""
    return "\n\n".join(t.content for t in text_turns(record, roles) if t.content)


def ends_in_tool_call(record: Record) -> bool:
    """Whether the last assistant turn calls tools: its text leads into the call, so it is not an
    answer that could have been cut off."""
    last = next((t for t in reversed(record.turns) if t.role == "assistant"), None)
    return last is not None and last.extra is not None and last.calls_tools


def prompt_roles(record: Record) -> tuple[str, ...]:
    """Roles that play the prompt: `user` for chats, `text` for text and classification data."""
    return ("text",) if record.format in ("text", "text_label") else ("user",)
