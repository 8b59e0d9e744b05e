"""Schema migrations: numbered SQL files per dialect, applied once each, under a lock."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import re
import sqlite3
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, LiteralString

from orchestrator.errors import MigrationError, redact_credentials
from orchestrator.store.base import MigrationState
from orchestrator.store.queries import load_queries, sql_directory

if TYPE_CHECKING:
    import psycopg

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclasses.dataclass(frozen=True, slots=True)
class Migration:
    """One migration file: ``0002_notify.sql`` has version 2 and name "0002_notify"."""

    version: int
    name: str
    sql: LiteralString


@functools.cache
def available_migrations(dialect: str) -> tuple[Migration, ...]:
    """The migrations shipped for ``dialect``, by version."""
    migrations: list[Migration] = []
    for entry in sql_directory(dialect).joinpath("migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is None:
            continue
        text: LiteralString = entry.read_text(encoding="utf-8")  # shipped, never user input
        migrations.append(Migration(int(match.group(1)), entry.name.removesuffix(".sql"), text))
    migrations.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two {dialect} migrations share a version number: {versions}")
    return tuple(migrations)


def migration_lock_key(schema: str) -> int:
    """The advisory lock key (a signed 64-bit integer) that serializes migrations of a schema."""
    digest = hashlib.sha256(f"orchestrator.migrate:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _state(dialect: str, applied: list[str]) -> MigrationState:
    available = tuple(migration.name for migration in available_migrations(dialect))
    return MigrationState(available=available, applied=tuple(applied))


# -- PostgreSQL -----------------------------------------------------------------------------


async def migrate_postgres(conn: psycopg.AsyncConnection[Any], schema: str) -> list[str]:
    """Apply pending migrations on ``conn`` (autocommit, search_path = ``schema``).

    The whole run holds an advisory lock derived from the schema name, so concurrent launches
    of many processes apply each migration once; each migration commits on its own. The
    caller closes ``conn`` afterwards (which also frees the lock if unlocking failed).
    """
    import psycopg  # here, not at the top: an SQLite process never loads psycopg
    from psycopg import sql

    queries = load_queries("postgres")
    lock = {"lock_key": migration_lock_key(schema)}
    await conn.execute(queries["lock_migrations"], lock)
    try:
        create_schema = sql.SQL(queries["create_schema"]).format(schema=sql.Identifier(schema))
        await conn.execute(create_schema)
        await conn.execute(queries["create_migrations_table"])
        cursor = await conn.execute(queries["applied_migrations"])
        applied = {_row_version(row) for row in await cursor.fetchall()}
        done: list[str] = []
        for migration in available_migrations("postgres"):
            if migration.version in applied:
                continue
            try:
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    params = {"version": migration.version, "name": migration.name}
                    await conn.execute(queries["record_migration"], params)
            except psycopg.OperationalError:
                raise  # the connection failed: the caller retries the whole run
            except psycopg.Error as error:
                raise MigrationError(
                    f"migration {migration.name} failed on schema {schema!r}:"
                    f" {redact_credentials(str(error))}",
                    migration=migration.name,
                ) from error
            done.append(migration.name)
        return done
    finally:
        if not conn.broken:
            await conn.execute(queries["unlock_migrations"], lock)


async def postgres_migration_state(conn: psycopg.AsyncConnection[Any]) -> MigrationState:
    """Available and applied migrations (nothing applied if the version table is missing)."""
    from psycopg import errors

    try:
        cursor = await conn.execute(load_queries("postgres")["applied_migrations"])
        rows = await cursor.fetchall()
    except errors.UndefinedTable:
        rows = []
    return _state("postgres", [_row_name(row) for row in rows])


def _row_name(row: Any) -> str:
    return str(row["name"] if isinstance(row, dict) else row[1])


# -- SQLite ---------------------------------------------------------------------------------


@contextlib.contextmanager
def sqlite_write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE (the write lock, waiting for other processes) ... COMMIT or ROLLBACK."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.rollback()
        raise
    conn.commit()


def sqlite_statements(script: str) -> Iterator[str]:
    """Split a migration script into statements (trigger bodies stay whole)."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            yield statement.strip()
            statement = ""


def migrate_sqlite(conn: sqlite3.Connection) -> list[str]:
    """Apply pending migrations on ``conn`` (isolation_level=None), each in BEGIN IMMEDIATE,
    re-reading the version table inside that lock so processes sharing a file apply each once."""
    queries = load_queries("sqlite")
    try:
        # Under the write lock: a read that turns into a write (as CREATE TABLE IF NOT EXISTS
        # does) fails at once with "database is locked" if another connection wrote meanwhile.
        with sqlite_write_transaction(conn):
            conn.execute(queries["create_migrations_table"])
    except sqlite3.Error as error:
        raise MigrationError(
            f"cannot create the migrations table: {redact_credentials(str(error))}"
        ) from error
    done: list[str] = []
    for migration in available_migrations("sqlite"):
        try:
            with sqlite_write_transaction(conn):
                rows = conn.execute(queries["applied_migrations"]).fetchall()
                if migration.version in {_row_version(row) for row in rows}:
                    continue
                for statement in sqlite_statements(migration.sql):
                    conn.execute(statement)
                params = {"version": migration.version, "name": migration.name}
                conn.execute(queries["record_migration"], params)
        except sqlite3.Error as error:
            raise MigrationError(
                f"migration {migration.name} failed: {redact_credentials(str(error))}",
                migration=migration.name,
            ) from error
        done.append(migration.name)
    return done


def sqlite_migration_state(conn: sqlite3.Connection) -> MigrationState:
    """Available and applied migrations (nothing applied if the version table is missing)."""
    try:
        rows = conn.execute(load_queries("sqlite")["applied_migrations"]).fetchall()
    except sqlite3.OperationalError:  # no such table
        rows = []
    return _state("sqlite", [_row_name(row) for row in rows])


def _row_version(row: Any) -> int:
    return int(row["version"] if isinstance(row, dict) else row[0])
