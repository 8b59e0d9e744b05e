"""Test databases on one PostgreSQL server: created from a migrated template, and reset to the
template's state for the next test instead of dropped.

Why not a fresh copy per test: CREATE DATABASE ... TEMPLATE writes about a thousand files and
DROP DATABASE unlinks them. On ext4 without a journal (this project's CI machine) each new file
then scans the inode bitmap past every recently deleted inode (`recently_deleted` in the kernel):
a profile of the PostgreSQL tests spent a third of the machine's CPU there, inside PostgreSQL.
A reset writes a few files instead of a thousand: the tables the test wrote to are truncated
(new empty files for them and their indexes, as in the template), the sequences restarted and
the planner's statistics put back as the template has them.

A database is handed out again only if it is provably in the template's state: its schema (every
relation, column, index, constraint, trigger, function, sequence, type, extension and database
setting outside the system schemas) fingerprints like the template's, and the tables the
migrations fill (the migration log) hold the template's rows. Anything else (a test that drops a
table, adds a schema, alters a setting) gets the database dropped, as before. Each test also gets
a new name (ALTER DATABASE ... RENAME, a catalog update): a process a test left behind that
reconnects by the old name fails instead of writing into the next test's database.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, LiteralString
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

# Every user-visible object outside the system schemas, as text without OIDs: equal text, same
# shape. Sequences' settings too (their values are restarted, not compared).
_SHAPE: LiteralString = """
WITH user_namespaces AS (
    SELECT oid, nspname FROM pg_namespace
    WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
      AND nspname NOT LIKE 'pg_temp_%' AND nspname NOT LIKE 'pg_toast_temp_%'
), parts AS (
    SELECT 'n ' || nspname AS part FROM user_namespaces
    UNION ALL
    SELECT format('r %s.%s %s %s %s', n.nspname, c.relname, c.relkind, c.relpersistence,
                  c.relrowsecurity)
    FROM pg_class c JOIN user_namespaces n ON n.oid = c.relnamespace
    UNION ALL
    SELECT format('a %s.%s %s %s %s %s %s', n.nspname, c.relname, a.attname,
                  format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attidentity,
                  pg_get_expr(d.adbin, d.adrelid))
    FROM pg_attribute a
    JOIN pg_class c ON c.oid = a.attrelid
    JOIN user_namespaces n ON n.oid = c.relnamespace
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT 'i ' || pg_get_indexdef(i.indexrelid)
    FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
    JOIN user_namespaces n ON n.oid = c.relnamespace
    UNION ALL
    SELECT format('c %s %s %s', con.conrelid::regclass, con.conname,
                  pg_get_constraintdef(con.oid))
    FROM pg_constraint con JOIN user_namespaces n ON n.oid = con.connamespace
    UNION ALL
    SELECT format('t %s %s', t.tgenabled, pg_get_triggerdef(t.oid))
    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
    JOIN user_namespaces n ON n.oid = c.relnamespace
    WHERE NOT t.tgisinternal
    UNION ALL
    SELECT format('f %s.%s(%s) %s', n.nspname, p.proname,
                  pg_get_function_identity_arguments(p.oid), md5(pg_get_functiondef(p.oid)))
    FROM pg_proc p JOIN user_namespaces n ON n.oid = p.pronamespace
    WHERE p.prokind IN ('f', 'p')
    UNION ALL
    SELECT format('s %s %s %s %s %s %s', s.seqrelid::regclass, s.seqtypid::regtype,
                  s.seqstart, s.seqincrement, s.seqmax, s.seqcycle)
    FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
    JOIN user_namespaces n ON n.oid = c.relnamespace
    UNION ALL
    SELECT format('y %s.%s %s', n.nspname, t.typname, t.typtype)
    FROM pg_type t JOIN user_namespaces n ON n.oid = t.typnamespace
    WHERE t.typtype IN ('e', 'd', 'c', 'r', 'm') AND t.typrelid = 0
    UNION ALL
    SELECT format('e %s %s', extname, extversion) FROM pg_extension
    UNION ALL
    SELECT format('p %s %s', polrelid::regclass, polname) FROM pg_policy
    UNION ALL
    SELECT 'g ' || array_to_string(setconfig, ',') FROM pg_db_role_setting
    WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
)
SELECT md5(coalesce(string_agg(part, E'\\n' ORDER BY part), '')) FROM parts
"""

_EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"  # md5(''): a table without rows

_SEQUENCES: LiteralString = """
SELECT format('%I.%I', schemaname, sequencename), start_value FROM pg_sequences
WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
"""

# User relations' physical size: a table the test never wrote to is as the template has it.
_SIZES: LiteralString = """
SELECT format('%I.%I', n.nspname, c.relname), pg_total_relation_size(c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
"""

# The planner's view of every user relation (copies of one template share their OIDs).
_STATISTICS: LiteralString = """
SELECT oid, relpages, reltuples, relallvisible FROM pg_class WHERE oid >= 16384
"""
_RESTORE_STATISTICS: LiteralString = """
WITH template (oid, relpages, reltuples, relallvisible) AS (
    SELECT * FROM unnest(%s::oid[], %s::int[], %s::real[], %s::int[])
), forgotten AS (
    DELETE FROM pg_statistic WHERE starelid >= 16384
)
UPDATE pg_class c
SET relpages = t.relpages, reltuples = t.reltuples, relallvisible = t.relallvisible
FROM template t WHERE c.oid = t.oid
  AND (c.relpages, c.reltuples, c.relallvisible) <> (t.relpages, t.reltuples, t.relallvisible)
"""

_OTHER_SESSIONS: LiteralString = """
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
"""


def url_for_database(admin_url: str, database: str) -> str:
    """``admin_url`` pointing at another database on the same server."""
    parts = urlsplit(admin_url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def create_database(admin_url: str, name: str, *, template: str | None = None) -> str:
    """Create database ``name`` (optionally copying ``template``) and return its URL."""
    query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        query = sql.SQL("{} TEMPLATE {}").format(query, sql.Identifier(template))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(query)
    return url_for_database(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    """Drop database ``name``, disconnecting whoever is still on it."""
    query = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(query)


def _seed_rows(conn: psycopg.Connection[Any], table: str) -> str:
    query = sql.SQL("SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM {} t")
    row = conn.execute(query.format(sql.SQL(table))).fetchone()  # table: format('%I.%I')
    assert row is not None
    return str(row[0])


class DatabasePool:
    """Copies of one migrated template, each reset to the template's state between tests."""

    def __init__(self, admin_url: str, template: str, *, prefix: str = "orch_t_") -> None:
        self.admin_url = admin_url
        self.template = template
        self.prefix = prefix
        self.free: list[str] = []
        with psycopg.connect(url_for_database(admin_url, template), autocommit=True) as conn:
            row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            superuser = row.fetchone()
            # Restoring the planner's statistics writes pg_class: without that right, every
            # test gets a new copy (and pays for it).
            self.reusable = bool(superuser and superuser[0])
            self.shape = self._shape(conn)
            self.sizes = self._sizes(conn)
            self.seeds = {table: _seed_rows(conn, table) for table in self.sizes}
            statistics = conn.execute(_STATISTICS).fetchall()
        # The tables the migrations filled keep their rows; every other table starts empty.
        self.seeds = {table: rows for table, rows in self.seeds.items() if rows != _EMPTY_MD5}
        self.statistics = [list(column) for column in zip(*statistics, strict=True)]

    def take(self) -> str:
        """The name of a database in the template's state, under a name of its own."""
        while self.free:
            name = self.free.pop()
            renamed = f"{self.prefix}{uuid.uuid4().hex[:16]}"
            try:
                with psycopg.connect(self.admin_url, autocommit=True) as conn:
                    conn.execute(
                        sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                            sql.Identifier(name), sql.Identifier(renamed)
                        )
                    )
            except psycopg.Error:  # somebody reconnected to it: not reusable
                drop_database(self.admin_url, name)
                continue
            return renamed
        name = f"{self.prefix}{uuid.uuid4().hex[:16]}"
        create_database(self.admin_url, name, template=self.template)
        return name

    def give_back(self, name: str) -> None:
        """Reset ``name`` for the next test, or drop it if it cannot be shown to be clean."""
        try:
            reusable = self.reusable and self._reset(name)
        except psycopg.Error:
            reusable = False
        if reusable:
            self.free.append(name)
        else:
            drop_database(self.admin_url, name)

    def close(self) -> None:
        while self.free:
            drop_database(self.admin_url, self.free.pop())

    def _reset(self, name: str) -> bool:
        url = url_for_database(self.admin_url, name)
        with psycopg.connect(url, autocommit=True) as conn:
            deadline = time.monotonic() + 5.0
            while True:  # terminated sessions leave pg_stat_activity a moment later
                row = conn.execute(_OTHER_SESSIONS).fetchone()
                if row is None or row[0] == 0:
                    break
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.01)
            if self._shape(conn) != self.shape:
                return False
            if any(_seed_rows(conn, table) != rows for table, rows in self.seeds.items()):
                return False
            sizes = self._sizes(conn)
            # TRUNCATE gives a written table new, empty files (heap, TOAST, indexes), as in
            # the template: emptied by DELETE, its indexes would keep their pages and the
            # planner would cost them as big. Tables never written are left alone.
            written = sorted(table for table, size in sizes.items() if size != self.sizes[table])
            with conn.transaction():
                if written:
                    tables = sql.SQL(", ").join(sql.SQL(table) for table in written)
                    conn.execute(sql.SQL("TRUNCATE {} CASCADE").format(tables))
                for sequence, start in conn.execute(_SEQUENCES).fetchall():
                    conn.execute("SELECT setval(%s::regclass, %s, false)", (sequence, start))
                conn.execute(_RESTORE_STATISTICS, self.statistics)
            return self._sizes(conn) == self.sizes

    @staticmethod
    def _shape(conn: psycopg.Connection[Any]) -> str:
        row = conn.execute(_SHAPE).fetchone()
        assert row is not None
        return str(row[0])

    @staticmethod
    def _sizes(conn: psycopg.Connection[Any]) -> dict[str, int]:
        return {str(table): int(size) for table, size in conn.execute(_SIZES)}
