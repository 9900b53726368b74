"""The signal cache: signals of expensive operators, keyed by (operator fingerprint, content).

A changed threshold leaves an operator's fingerprint unchanged (only parameters marked `compute`
enter it), so re-running with new thresholds reads signals instead of running models again. One
SQLite file in WAL mode: workers read and write it concurrently.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import time
from typing import Any

from tamis.storage import content_hash, default_cache_dir

__all__ = ["SignalCache", "content_hash", "default_cache_dir"]


class SignalCache:
    def __init__(self, directory: str):
        os.makedirs(directory, exist_ok=True)
        self.path = os.path.join(directory, "signals.sqlite")
        self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self._wal()
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS signals (op TEXT, k BLOB, v TEXT, PRIMARY KEY (op, k))"
        )
        self.hits = 0
        self.misses = 0

    def _wal(self) -> None:
        """Switch a new file to WAL mode. Two processes doing it at once (a run's workers, or two
        runs, on a new cache) get "database is locked" at once: SQLite does not wait on its
        timeout there. So wait and try again; once set, the mode stays with the file."""
        for attempt in range(100):
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or attempt == 99:
                    raise
                time.sleep(0.02 + 0.03 * random.random())

    def close(self) -> None:
        self.db.close()

    def get_many(self, op: str, keys: list[bytes]) -> dict[bytes, dict[str, Any]]:
        out: dict[bytes, dict[str, Any]] = {}
        uniq = list(dict.fromkeys(keys))
        for i in range(0, len(uniq), 500):
            chunk = uniq[i : i + 500]
            q = f"SELECT k, v FROM signals WHERE op = ? AND k IN ({','.join('?' * len(chunk))})"
            for k, v in self.db.execute(q, [op, *chunk]):
                out[k] = json.loads(v)
        return out

    def put_many(self, op: str, items: dict[bytes, dict[str, Any]]) -> None:
        if not items:
            return
        self.db.execute("BEGIN")
        self.db.executemany(
            "INSERT OR REPLACE INTO signals (op, k, v) VALUES (?, ?, ?)",
            [(op, k, json.dumps(v)) for k, v in items.items()],
        )
        self.db.execute("COMMIT")
