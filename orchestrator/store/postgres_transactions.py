"""The PostgreSQL store's plans run on a caller's own connection, inside its transaction: a
transactional start or send commits, or rolls back, with the caller's business writes.

The store's statements name its tables unqualified (its pool connects with ``search_path`` set
to the schema), so on a caller's connection the plan runs between ``enter_schema`` and
``leave_schema``, which set and restore ``search_path`` for the transaction only. It runs in a
savepoint: an error of the orchestrator's (a taken dedup id, a finished destination) undoes
its own writes and leaves the caller's transaction usable. Nothing is retried (the caller owns
the connection) and nothing is committed here, except on a connection in autocommit, where
there is no transaction to join and the plan commits on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, LiteralString, TypeVar

import psycopg
from psycopg.rows import DictRow, dict_row

from orchestrator.errors import ConfigurationError, InvalidArgumentError
from orchestrator.store.plans import Plan, Result, Statement

T = TypeVar("T")


class CallerTransactions:
    """Runs plans on connections the application owns (``psycopg.AsyncConnection``, or a sync
    ``psycopg.Connection``, driven in a thread), after checking they reach the store."""

    def __init__(
        self,
        *,
        schema: str,
        queries: dict[str, LiteralString],
        database: Callable[[], Awaitable[str]],
        translate: Callable[[psycopg.Error], Exception],
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self.schema = schema
        self.queries = queries
        self._database = database  # the store's own database name (asked once, of its pool)
        self._translate = translate
        self._clock_ms = clock_ms

    async def run(self, connection: object, plan: Callable[[], Plan[T]]) -> T:
        """Drive ``plan()`` on ``connection`` in a savepoint of its transaction.

        Raises:
            InvalidArgumentError: not a psycopg connection.
            ConfigurationError: a connection to another database, or one without the store's
                tables (its schema not migrated there).
        """
        database = await self._database()
        try:
            if isinstance(connection, psycopg.AsyncConnection):
                return await self._run_async(connection, database, plan)
            if isinstance(connection, psycopg.Connection):
                return await asyncio.to_thread(self._run_sync, connection, database, plan)
        except psycopg.Error as error:
            raise self._translate(error) from error
        raise InvalidArgumentError(
            f"a transactional start or send takes a psycopg connection (psycopg.AsyncConnection"
            f" or psycopg.Connection), got {type(connection).__name__}"
        )

    async def _run_async(
        self, connection: psycopg.AsyncConnection[Any], database: str, plan: Callable[[], Plan[T]]
    ) -> T:
        async with connection.cursor(row_factory=dict_row) as cursor:
            # First, so that a connection outside autocommit opens its transaction here: the
            # savepoint below then nests in it instead of committing on its own.
            await cursor.execute(self.queries["connection_target"], self._target_params())
            self._check(await cursor.fetchone(), database)
            async with connection.transaction():
                steps = self._within(plan())
                statement = next(steps)
                while True:
                    await cursor.execute(self.queries[statement.name], statement.params)
                    rows = await cursor.fetchall() if cursor.description else []
                    try:
                        statement = steps.send(Result(rows, cursor.rowcount))
                    except StopIteration as stop:
                        return stop.value  # type: ignore[no-any-return]

    def _run_sync(
        self, connection: psycopg.Connection[Any], database: str, plan: Callable[[], Plan[T]]
    ) -> T:
        with connection.cursor(row_factory=dict_row) as cursor:
            cursor.execute(self.queries["connection_target"], self._target_params())
            self._check(cursor.fetchone(), database)
            with connection.transaction():
                steps = self._within(plan())
                statement = next(steps)
                while True:
                    cursor.execute(self.queries[statement.name], statement.params)
                    rows = cursor.fetchall() if cursor.description else []
                    try:
                        statement = steps.send(Result(rows, cursor.rowcount))
                    except StopIteration as stop:
                        return stop.value  # type: ignore[no-any-return]

    def _target_params(self) -> dict[str, Any]:
        return {"workflows_table": f"{self.schema}.workflows"}

    def _check(self, target: DictRow | None, database: str) -> None:
        assert target is not None, "connection_target answers one row"
        if target["database"] != database:
            raise ConfigurationError(
                f"the connection is to database {target['database']!r}, but the orchestrator's"
                f" store is in {database!r}: a transactional start or send must use a"
                " connection to the store's own database"
            )
        if not target["has_store"]:
            raise ConfigurationError(
                f"database {database!r} has no orchestrator tables in schema {self.schema!r}"
                " as this connection sees them: launch the app (or run `saga migrate`) first,"
                " and check the connection's user may read that schema"
            )

    def _within(self, steps: Plan[T]) -> Plan[T]:
        """``steps`` between setting the store's search_path (and test clock) for this
        transaction and restoring the caller's."""
        now_ms = None if self._clock_ms is None else str(self._clock_ms())
        previous = (
            yield Statement("enter_schema", {"schema": self.schema, "now_ms": now_ms})
        ).one()
        assert previous is not None, "enter_schema answers one row"
        answer = yield from steps
        yield Statement(
            "leave_schema",
            {"search_path": previous["search_path"], "now_ms": previous["now_ms"]},
        )
        return answer
