"""PostgreSQL administration for the benchmarks: databases, commit counters, commit rate."""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Counters:
    """Commit counters at one moment.

    commits: ``xact_commit`` of the benchmark database (every committed transaction, reads too).
    xids: the cluster's next transaction id; its advance counts write transactions (only they
        are assigned an id) in every database, so it is exact only while nobody else writes.
    others: ``xact_commit`` of the databases that are not the benchmark's (nor the admin one,
        nor ``postgres``, which DBOS visits at launch), to tell whether someone else was busy.
    """

    commits: int
    xids: int
    others: frozenset[tuple[str, int]]


@dataclass(frozen=True)
class Delta:
    """What happened between two Counters; ``others_active`` counts databases that changed."""

    commits: int
    xids: int
    others_active: int

    @classmethod
    def between(cls, before: Counters, after: Counters) -> Delta:
        return cls(
            after.commits - before.commits,
            after.xids - before.xids,
            len({name for name, _ in before.others ^ after.others}),
        )


def _database_commits(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """``xact_commit`` per database, but the admin one and ``postgres`` (DBOS visits it)."""
    conn.execute("SELECT pg_stat_clear_snapshot()")
    rows = conn.execute(
        "SELECT datname, xact_commit FROM pg_stat_database WHERE datname IS NOT NULL"
        " AND datname NOT IN (current_database(), 'postgres')"
    ).fetchall()
    return {str(name): int(value) for name, value in rows}


def _read(
    conn: psycopg.Connection[Any], database: str, own: Collection[str]
) -> tuple[Counters, int]:
    """The counters, and how many sessions are connected to ``database``."""
    commits = _database_commits(conn)
    if database not in commits:
        raise RuntimeError(f"database {database!r} not found in pg_stat_database")
    row = conn.execute(
        "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint,"
        " (SELECT count(*) FROM pg_stat_activity WHERE datname = %s)",
        (database,),
    ).fetchone()
    assert row is not None
    others = frozenset(item for item in commits.items() if item[0] not in own)
    return Counters(commits[database], int(row[0]), others), int(row[1])


def foreign_commits(admin_url: str, own: Collection[str]) -> dict[str, int]:
    """``xact_commit`` of the databases that are not the benchmark's: other people's work."""
    with _connect(admin_url) as conn:
        return {name: n for name, n in _database_commits(conn).items() if name not in own}


def foreign_activity(before: dict[str, int], after: dict[str, int]) -> int:
    """Commits other databases made between two ``foreign_commits`` readings (at least), plus
    one for each database created or dropped meanwhile."""
    changed = len(before.keys() ^ after.keys())
    return changed + sum(max(0, n - before.get(name, 0)) for name, n in after.items())


def settled_counters(
    admin_url: str, database: str, own: Collection[str], timeout: float = 15.0
) -> Counters:
    """The counters once nobody is connected to ``database`` and its statistics are flushed.

    Backends flush their statistics when they exit, so once the benchmark process has closed
    its connections and two reads 200 ms apart agree, the commit counter is complete. Read from
    the admin database, whose own commits are not counted.
    """
    deadline = time.monotonic() + timeout
    with _connect(admin_url) as conn:
        previous: int | None = None
        while True:
            counters, sessions = _read(conn, database, own)
            if sessions == 0 and counters.commits == previous:
                return counters
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{database}: commit counter not settled after {timeout:.0f}s "
                    f"({sessions} sessions still connected)"
                )
            previous = counters.commits if sessions == 0 else None
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
