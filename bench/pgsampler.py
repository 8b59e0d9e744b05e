"""What one database costs PostgreSQL while a benchmark runs: CPU time of its backends, the most
sessions connected at once, and the WAL written (sampled from a thread, read from /proc)."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

import psycopg

SAMPLE_SECONDS = 0.05  # how often the sessions and their CPU are read
_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def _cpu_ticks(pid: int) -> int | None:
    """utime + stime of a process in clock ticks (None once it has exited)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5), after the name


@dataclass(frozen=True)
class ServerCost:
    """cpu_seconds: CPU of the database's backend processes (user + system), summed over every
    backend seen; a backend that exits between two samples loses at most SAMPLE_SECONDS of it.
    Background processes (WAL writer, checkpointer) serve every database and are not counted.
    max_connections: most sessions of the database at once (pg_stat_activity).
    wal_bytes: pg_current_wal_lsn() advance: cluster-wide, so it includes other databases'
    writes made meanwhile (``others_active`` counts the databases that committed)."""

    cpu_seconds: float
    max_connections: int
    wal_bytes: int


class ServerSampler:
    """Samples one database's backends from a thread between ``start()`` and ``stop()``."""

    def __init__(self, admin_url: str, database: str) -> None:
        self.admin_url = admin_url
        self.database = database
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._first: dict[int, int] = {}  # pid -> ticks at its first sample (0 if born later)
        self._last: dict[int, int] = {}
        self._max_connections = 0
        self._wal_start = 0
        self._result: ServerCost | None = None
        self._conn: psycopg.Connection[Any] | None = None

    def _sample(self, conn: psycopg.Connection[Any], *, initial: bool) -> None:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.database,)
        ).fetchall()
        self._max_connections = max(self._max_connections, len(rows))
        for (pid,) in rows:
            ticks = _cpu_ticks(int(pid))
            if ticks is None:
                continue
            if pid not in self._first:
                self._first[pid] = ticks if initial else 0
            self._last[pid] = ticks

    def start(self) -> None:
        conn = psycopg.connect(self.admin_url, autocommit=True)
        self._conn = conn
        row = conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()
        assert row is not None
        self._wal_start = int(row[0])
        self._sample(conn, initial=True)

        def loop() -> None:
            while not self._stop.wait(SAMPLE_SECONDS):
                self._sample(conn, initial=False)

        self._thread = threading.Thread(target=loop, name="pg-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> ServerCost:
        assert self._thread is not None and self._conn is not None
        self._stop.set()
        self._thread.join()
        conn = self._conn
        self._sample(conn, initial=False)
        row = conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()
        assert row is not None
        conn.close()
        ticks = sum(self._last[pid] - self._first[pid] for pid in self._last)
        return ServerCost(
            cpu_seconds=ticks / _TICKS_PER_SECOND,
            max_connections=self._max_connections,
            wal_bytes=int(row[0]) - self._wal_start,
        )
