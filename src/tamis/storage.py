"""Where tamis keeps what it can recompute: the cache folder, content hashes, a blob store.

Used by the pipeline's signal cache and by the embedding cache of `tamis.models`, so it sits below
both.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3


def default_cache_dir() -> str:
    return os.environ.get("TAMIS_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "tamis"
    )


def content_hash(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class BlobCache:
    """Binary values (embeddings) keyed by (namespace, content hash), in the same cache folder."""

    def __init__(self, directory: str, name: str = "embeddings.sqlite"):
        os.makedirs(directory, exist_ok=True)
        self.path = os.path.join(directory, name)
        self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS blobs (ns TEXT, k BLOB, v BLOB, PRIMARY KEY (ns, k))"
        )

    def get_many(self, ns: str, keys: list[bytes]) -> dict[bytes, bytes]:
        out: dict[bytes, bytes] = {}
        uniq = list(dict.fromkeys(keys))
        for i in range(0, len(uniq), 500):
            chunk = uniq[i : i + 500]
            q = f"SELECT k, v FROM blobs WHERE ns = ? AND k IN ({','.join('?' * len(chunk))})"
            out.update(self.db.execute(q, [ns, *chunk]))
        return out

    def put_many(self, ns: str, items: dict[bytes, bytes]) -> None:
        if not items:
            return
        self.db.execute("BEGIN")
        self.db.executemany(
            "INSERT OR REPLACE INTO blobs (ns, k, v) VALUES (?, ?, ?)",
            [(ns, k, v) for k, v in items.items()],
        )
        self.db.execute("COMMIT")
