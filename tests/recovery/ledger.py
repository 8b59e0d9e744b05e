"""The crash-test ledger: each attempt and each applied effect, keyed by idempotency key.

Backed by a SQLite file so that any number of processes (killed or not) can write to it:
``attempt`` records every execution of an effect, ``apply`` records it once per key (as the
sample services do with ``Idempotency-Key``). Checkers read both after the run.
"""

from __future__ import annotations

import os
import sqlite3
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS attempts (id INTEGER PRIMARY KEY, key TEXT NOT NULL, pid INTEGER);
CREATE TABLE IF NOT EXISTS applied (key TEXT PRIMARY KEY, pid INTEGER);
"""


class Ledger:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        with self._connect() as db:
            db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=60, isolation_level=None)

    def record(self, key: str) -> bool:
        """One execution of the effect keyed ``key``: counted as an attempt, applied once.
        Returns True if this call applied it (False: a duplicate, deduplicated)."""
        with self._connect() as db:
            db.execute("INSERT INTO attempts (key, pid) VALUES (?, ?)", (key, os.getpid()))
            cursor = db.execute(
                "INSERT OR IGNORE INTO applied (key, pid) VALUES (?, ?)", (key, os.getpid())
            )
            return cursor.rowcount == 1

    def snapshot(self) -> LedgerSnapshot:
        with self._connect() as db:
            attempts = Counter(key for (key,) in db.execute("SELECT key FROM attempts"))
            applied = {key for (key,) in db.execute("SELECT key FROM applied")}
        return LedgerSnapshot(attempts=attempts, applied=applied)


@dataclass(frozen=True)
class LedgerSnapshot:
    attempts: Counter[str]
    applied: set[str]

    def check_balanced(self, expected_keys: set[str], crashes: int) -> None:
        """Every expected effect applied once, nothing unexpected, re-executions bounded by the
        number of crashes."""
        assert self.applied == expected_keys, (
            f"missing {expected_keys - self.applied}, unexpected {self.applied - expected_keys}"
        )
        extra = sum(self.attempts.values()) - len(self.applied)
        assert extra <= crashes, f"{extra} re-executions for {crashes} crashes: {self.attempts}"
