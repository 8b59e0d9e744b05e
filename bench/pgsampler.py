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
    writes made meanwhile. own_wal_bytes: the WAL records (with their full-page images) that
    touch the database's own relations, read back with pg_walinspect (None where it is not
    available): other databases' writes excluded, and so are commit records (tens of bytes
    per write transaction, which name no relation)."""

    cpu_seconds: float
    max_connections: int
    wal_bytes: int
    own_wal_bytes: int | None


class ServerSampler:
    """Samples one database's backends from a thread between ``start()`` and ``stop()``."""

    def __init__(self, admin_url: str, database: str, database_url: str) -> None:
        self.admin_url = admin_url
        self.database_url = database_url
        self.database = database
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._first: dict[int, int] = {}  # pid -> ticks at its first sample (0 if born later)
        self._last: dict[int, int] = {}
        self._max_connections = 0
        self._wal_start = 0
        self._start_lsn = "0/0"
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
        row = conn.execute(
            "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn, pg_current_wal_lsn()::text"
        ).fetchone()
        assert row is not None
        self._wal_start, self._start_lsn = int(row[0]), str(row[1])
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
        row = conn.execute(
            "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn, pg_current_wal_lsn()::text"
        ).fetchone()
        assert row is not None
        conn.close()
        own = self._own_wal_bytes(self._start_lsn, str(row[1]))
        ticks = sum(self._last[pid] - self._first[pid] for pid in self._last)
        return ServerCost(
            cpu_seconds=ticks / _TICKS_PER_SECOND,
            max_connections=self._max_connections,
            wal_bytes=int(row[0]) - self._wal_start,
            own_wal_bytes=own,
        )

    def _own_wal_bytes(self, start_lsn: str, end_lsn: str) -> int | None:
        """Bytes of the WAL records between two LSNs that name one of the database's
        relations (pg_walinspect, created in the benchmark's own database)."""
        try:
            with psycopg.connect(self.database_url, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
                row = conn.execute(
                    "SELECT coalesce(sum(record_length), 0)"
                    " FROM pg_get_wal_records_info(%s::pg_lsn, %s::pg_lsn)"
                    " WHERE block_ref LIKE '%%rel %%/' || ("
                    "   SELECT oid FROM pg_database WHERE datname = current_database()"
                    " )::text || '/%%'",
                    (start_lsn, end_lsn),
                ).fetchone()
        except psycopg.Error:
            return None
        return None if row is None else int(row[0])
