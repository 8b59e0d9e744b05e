"""PostgreSQL administration for the benchmarks: databases, commit counters, commit rate."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql


def database_url(admin_url: str, database: str) -> str:
    """``admin_url`` with its database replaced by ``database`` (a URL both systems accept)."""
    parts = urlsplit(admin_url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def _connect(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True)


def reset_database(admin_url: str, database: str) -> None:
    """Drop (disconnecting any session) and re-create ``database``."""
    with _connect(admin_url) as conn:
        name = sql.Identifier(database)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(name))


def server_info(admin_url: str) -> dict[str, str]:
    """The server version and the settings that decide what a commit costs."""
    names = ("server_version", "synchronous_commit", "fsync", "wal_sync_method", "commit_delay")
    values: dict[str, str] = {}
    with _connect(admin_url) as conn:
        for name in names:
            row = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()
            values[name] = "" if row is None else str(row[0])
    return values


def _read_commits(conn: psycopg.Connection[Any], database: str) -> tuple[int, int]:
    """(xact_commit of ``database``, sessions connected to it), from a fresh stats snapshot."""
    conn.execute("SELECT pg_stat_clear_snapshot()")
    row = conn.execute(
        "SELECT d.xact_commit,"
        " (SELECT count(*) FROM pg_stat_activity a WHERE a.datname = d.datname)"
        " FROM pg_stat_database d WHERE d.datname = %s",
        (database,),
    ).fetchone()
    if row is None:
        raise RuntimeError(f"database {database!r} not found in pg_stat_database")
    return int(row[0]), int(row[1])


def settled_commits(admin_url: str, database: str, timeout: float = 15.0) -> int:
    """``database``'s committed-transaction count once nobody is connected to it.

    Backends flush their statistics when they exit, so once the benchmark process has closed
    its connections and two reads 200 ms apart agree, the counter is complete. Read from the
    admin database so the reads themselves are not counted.
    """
    deadline = time.monotonic() + timeout
    with _connect(admin_url) as conn:
        previous: int | None = None
        while True:
            commits, sessions = _read_commits(conn, database)
            if sessions == 0 and commits == previous:
                return commits
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{database}: commit counter not settled after {timeout:.0f}s "
                    f"({sessions} sessions still connected)"
                )
            previous = commits if sessions == 0 else None
            time.sleep(0.2)


def pg_commit_rate(url: str, seconds: float) -> dict[str, float]:
    """Single-row INSERTs in autocommit on one connection for ``seconds``: the physical floor
    of one durable commit per round trip on this machine."""
    with _connect(url) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_commit_probe")
        conn.execute("CREATE TABLE bench_commit_probe (id bigserial PRIMARY KEY, v int)")
        for i in range(50):  # warm-up
            conn.execute("INSERT INTO bench_commit_probe (v) VALUES (%s)", (i,))
        count = 0
        began = time.perf_counter()
        deadline = began + seconds
        while time.perf_counter() < deadline:
            conn.execute("INSERT INTO bench_commit_probe (v) VALUES (%s)", (count,))
            count += 1
        elapsed = time.perf_counter() - began
        conn.execute("DROP TABLE bench_commit_probe")
    return {"commits_per_s": count / elapsed, "commit_ms": elapsed / count * 1000}
