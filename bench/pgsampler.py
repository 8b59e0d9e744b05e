"""What one database costs PostgreSQL while a benchmark runs: CPU time of its backends, the most
sessions connected at once, and the WAL written (sampled from a thread, read from /proc)."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

SAMPLE_SECONDS = 0.05  # how often the sessions and their CPU are read
INSPECT_DATABASE = "bench_walinspect"  # where pg_walinspect is installed to read the WAL
WAL_EVERY_SAMPLES = 10  # the database's own WAL is read every 0.5 s: a busy shared server
# recycles WAL segments within seconds, and pg_walinspect can read only what is left
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
    touch the database's own relations, read back with pg_walinspect every 0.5 s (None where
    it is not available, or where the server recycled WAL segments before they were read):
    other databases' writes excluded, and so are commit records (tens of bytes per write
    transaction, which name no relation)."""

    cpu_seconds: float
    max_connections: int
    wal_bytes: int
    own_wal_bytes: int | None


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
        self._start_lsn = "0/0"  # the WAL up to here is counted in _own_wal
        self._own_wal: int | None = 0
        self._inspect: psycopg.Connection[Any] | None = None
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
            samples = 0
            while not self._stop.wait(SAMPLE_SECONDS):
                self._sample(conn, initial=False)
                samples += 1
                if samples % WAL_EVERY_SAMPLES == 0:  # before the server recycles the segments
                    self._read_own_wal(conn)

        self._thread = threading.Thread(target=loop, name="pg-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> ServerCost:
        assert self._thread is not None and self._conn is not None
        self._stop.set()
        self._thread.join()
        conn = self._conn
        self._sample(conn, initial=False)
        self._read_own_wal(conn)
        if self._inspect is not None:
            self._inspect.close()
        row = conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()
        assert row is not None
        conn.close()
        ticks = sum(self._last[pid] - self._first[pid] for pid in self._last)
        return ServerCost(
            cpu_seconds=ticks / _TICKS_PER_SECOND,
            max_connections=self._max_connections,
            wal_bytes=int(row[0]) - self._wal_start,
            own_wal_bytes=self._own_wal,
        )

    def _connect_inspector(self) -> psycopg.Connection[Any]:
        """A session in a database of its own (INSPECT_DATABASE, created once, with
        pg_walinspect): its queries count neither in the benchmark database's commits, nor
        connections, nor backend CPU."""
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            found = admin.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (INSPECT_DATABASE,)
            ).fetchone()
            if found is None:
                admin.execute(
                    sql.SQL("CREATE DATABASE {}").format(sql.Identifier(INSPECT_DATABASE))
                )
        parts = urlsplit(self.admin_url)
        url = urlunsplit((parts.scheme, parts.netloc, "/" + INSPECT_DATABASE, parts.query, ""))
        conn = psycopg.connect(url, autocommit=True)
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        return conn

    def _read_own_wal(self, conn: psycopg.Connection[Any]) -> None:
        """Add the bytes of the WAL records written since the last read that name one of the
        database's relations (pg_walinspect, created in the benchmark's own database); once a
        read fails (the segments were recycled first, no pg_walinspect) the figure is None."""
        row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        assert row is not None
        end_lsn = str(row[0])
        if self._own_wal is None or end_lsn == self._start_lsn:
            return
        try:
            if self._inspect is None:
                self._inspect = self._connect_inspector()
            found = self._inspect.execute(
                "SELECT coalesce(sum(record_length), 0)"
                " FROM pg_get_wal_records_info(%s::pg_lsn, %s::pg_lsn)"
                " WHERE block_ref LIKE '%%rel %%/' || ("
                "   SELECT oid FROM pg_database WHERE datname = %s"
                " )::text || '/%%'",
                (self._start_lsn, end_lsn, self.database),
            ).fetchone()
        except psycopg.Error:
            self._own_wal = None
            return
        self._own_wal += 0 if found is None else int(found[0])
        self._start_lsn = end_lsn
