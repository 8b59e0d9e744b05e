"""A service's own tables: one small facade over SQLite (embedded) or PostgreSQL (a schema)."""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

Row = dict[str, Any]
POOL_MAX_CONNECTIONS = 16  # per service process; the load test runs one process per service


class Cursor(Protocol):
    """What a transaction hands out: ``execute`` with ``?`` placeholders, then fetch rows."""

    def execute(self, query: str, params: Sequence[Any] = ()) -> Cursor: ...

    def one(self) -> Row | None: ...

    def all(self) -> list[Row]: ...

    @property
    def rowcount(self) -> int: ...


class _SqliteCursor:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._cursor = connection.cursor()

    def execute(self, query: str, params: Sequence[Any] = ()) -> _SqliteCursor:
        self._cursor.execute(query, tuple(params))
        return self

    def one(self) -> Row | None:
        row = self._cursor.fetchone()
        return None if row is None else dict(row)

    def all(self) -> list[Row]:
        return [dict(row) for row in self._cursor.fetchall()]

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount


class _PostgresCursor:
    def __init__(self, connection: psycopg.Connection[Row]) -> None:
        self._cursor = connection.cursor()

    def execute(self, query: str, params: Sequence[Any] = ()) -> _PostgresCursor:
        self._cursor.execute(query.replace("?", "%s"), tuple(params))
        return self

    def one(self) -> Row | None:
        return self._cursor.fetchone()

    def all(self) -> list[Row]:
        return self._cursor.fetchall()

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount


class Database:
    """Transactions on a service's tables. SQLite: one connection behind a lock (the service
    is one process). PostgreSQL: a pool whose connections use the service's own schema."""

    def __init__(self, url: str, schema: str) -> None:
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", schema):
            raise ValueError(f"bad schema name {schema!r}")
        self.url = url
        self.dialect = "postgres" if url.startswith(("postgresql://", "postgres://")) else "sqlite"
        self._lock = threading.Lock()
        self._sqlite: sqlite3.Connection | None = None
        self._pool: ConnectionPool[psycopg.Connection[Row]] | None = None
        if self.dialect == "sqlite":
            path = url.removeprefix("sqlite:///")
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._sqlite = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._sqlite.row_factory = sqlite3.Row
            self._sqlite.execute("PRAGMA journal_mode=WAL")
            self._sqlite.execute("PRAGMA busy_timeout=10000")
        else:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            self._pool = ConnectionPool(
                url,
                min_size=1,
                max_size=POOL_MAX_CONNECTIONS,
                kwargs={"options": f"-c search_path={schema}", "row_factory": dict_row},
                open=True,
            )

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        if self._sqlite is not None:
            with self._lock:
                self._sqlite.execute("BEGIN IMMEDIATE")
                try:
                    yield _SqliteCursor(self._sqlite)
                except BaseException:
                    self._sqlite.execute("ROLLBACK")
                    raise
                self._sqlite.execute("COMMIT")
            return
        assert self._pool is not None
        with self._pool.connection() as conn, conn.transaction():
            yield _PostgresCursor(conn)

    def script(self, statements: str) -> None:
        """Run ``;``-separated DDL (CREATE TABLE IF NOT EXISTS …) in one transaction."""
        with self.transaction() as cursor:
            for statement in statements.split(";"):
                if statement.strip():
                    cursor.execute(statement)

    def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
        if self._pool is not None:
            self._pool.close()


def database_from_env(service: str) -> Database:
    """``<SERVICE>_DATABASE_URL``, else a PostgreSQL ``DATABASE_URL`` (the service's tables in
    schema ``<service>``), else the SQLite file ``$SHOP_DATA_DIR/<service>.db``."""
    url = os.environ.get(f"{service.upper()}_DATABASE_URL") or os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgresql://", "postgres://", "sqlite:///")) or url.startswith(
        "sqlite"
    ):
        url = f"sqlite:///{os.environ.get('SHOP_DATA_DIR', '.orchestrator/shop')}/{service}.db"
    return Database(url, schema=service)
