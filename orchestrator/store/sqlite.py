"""The embedded SQLite store: one file (or ``:memory:``), one connection, one worker thread."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from orchestrator.errors import (
    ConfigurationError,
    StoreError,
    StoreUnavailableError,
    WorkflowNotFoundError,
)
from orchestrator.store.base import MessageSealer, MigrationState, NotificationHandler
from orchestrator.store.migrate import (
    migrate_sqlite,
    sqlite_migration_state,
    sqlite_write_transaction,
)
from orchestrator.store.plans import Plan, Result
from orchestrator.store.queries import load_queries
from orchestrator.store.sql import SQLStore

T = TypeVar("T")

logger = logging.getLogger(__name__)

MEMORY = ":memory:"
MIN_SQLITE_VERSION = (3, 35, 0)  # RETURNING, UPDATE ... FROM
BUSY_TIMEOUT_SECONDS = 30.0  # how long a write waits for another process's write lock


def wall_clock_ms() -> int:
    """Epoch milliseconds from this machine's clock (the default store clock)."""
    return time.time_ns() // 1_000_000


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}


def _adapt(params: Mapping[str, Any]) -> dict[str, Any]:
    """sqlite3 has no arrays: lists travel as JSON text, read in SQL with json_each."""
    return {
        key: json.dumps(value) if isinstance(value, list | tuple) else value
        for key, value in params.items()
    }


@contextlib.contextmanager
def _translate_errors() -> Iterator[None]:
    """The one place where sqlite3 errors become orchestrator errors."""
    try:
        yield
    except sqlite3.IntegrityError as error:
        if "FOREIGN KEY" in str(error):
            raise WorkflowNotFoundError(f"the workflow does not exist ({error})") from error
        raise StoreError(f"SQLite: {error}") from error
    except sqlite3.OperationalError as error:
        if "locked" in str(error) or "busy" in str(error):
            raise StoreUnavailableError(f"SQLite database is busy: {error}") from error
        raise StoreError(f"SQLite: {error}") from error
    except sqlite3.Error as error:
        raise StoreError(f"SQLite: {error}") from error


def _translated(function: Callable[..., T], *args: Any) -> T:
    with _translate_errors():
        return function(*args)


class SQLiteStore(SQLStore):
    """A Store on one SQLite file; every call runs on one worker thread, one at a time.

    Args:
        path: the database file (its directory is created), or ":memory:".
        clock_ms: the clock behind SQL ``now_ms()``; epoch milliseconds of this machine if None.
        sealer: seals messages sent by business key for their receiver (see MessageSealer).
    """

    def __init__(
        self,
        path: str,
        *,
        clock_ms: Callable[[], int] | None = None,
        sealer: MessageSealer | None = None,
    ) -> None:
        super().__init__(SQLiteDriver(path, clock_ms=clock_ms), sealer)
        self.path = path


class SQLiteDriver:
    """The connection of an SQLiteStore: one sqlite3 connection used by one worker thread."""

    dialect = "sqlite"
    # Another process writing the same file (a CLI, a second app) cannot notify this one:
    # waiters re-read this often.
    poll_seconds: float | None = 2.0
    connection_failures = 0  # (a file: no connection is ever lost)

    def __init__(self, path: str, *, clock_ms: Callable[[], int] | None = None) -> None:
        self.path = path
        self._clock_ms = clock_ms or wall_clock_ms
        self._queries = load_queries("sqlite")
        self._handlers: list[NotificationHandler] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor: ThreadPoolExecutor | None = None
        # Touched only on the worker thread:
        self._connection: sqlite3.Connection | None = None
        self._pending: list[tuple[str, str]] = []

    # -- life cycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the connection and apply pending migrations."""
        if sqlite3.sqlite_version_info < MIN_SQLITE_VERSION:
            raise ConfigurationError(
                f"SQLite {sqlite3.sqlite_version} is too old: the SQLite store needs"
                f" {'.'.join(map(str, MIN_SQLITE_VERSION))} or newer (or use PostgreSQL)"
            )
        if self._executor is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="orchestrator-sqlite")
        try:
            await self._call(self._connect)
            await self.migrate()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the connection and stop the worker thread (idempotent)."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        self._handlers.clear()
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._disconnect)
        finally:
            executor.shutdown(wait=False)

    async def migrate(self) -> list[str]:
        """Apply pending migrations; return the names applied now."""
        return await self._call(lambda: migrate_sqlite(self._conn()))

    async def migration_state(self) -> MigrationState:
        """What is applied and what is available."""
        return await self._call(lambda: sqlite_migration_state(self._conn()))

    async def listen(self, handler: NotificationHandler) -> None:
        """Call ``handler(kind, detail)`` on the event loop after each commit that notifies."""
        self._handlers.append(handler)

    # -- driving plans ----------------------------------------------------------------------

    async def run(self, plan: Callable[[], Plan[T]], *, transaction: bool) -> T:
        # SQLite runs every operation in BEGIN IMMEDIATE ... COMMIT: one thread hop, one commit.
        del transaction
        return await self._call(self._drive, plan)

    async def run_in(self, connection: object, plan: Callable[[], Plan[T]]) -> T:
        """Refused: SQLite has no connection an application could share with the store."""
        raise ConfigurationError(
            "a transactional start or send (start_in, send_in) needs PostgreSQL: the SQLite"
            " store cannot join the caller's transaction; use start/send, or a postgresql://"
            " database"
        )

    async def _call(self, function: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise StoreError("the SQLite store is not open: call open() first")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, _translated, function, *args)

    def _drive(self, plan: Callable[[], Plan[T]]) -> T:
        conn = self._conn()
        self._pending.clear()
        try:
            with sqlite_write_transaction(conn):
                answer = self._execute(conn, plan())
        except BaseException:
            self._pending.clear()  # rolled back: what it would have notified never happened
            raise
        self._deliver()
        return answer

    def _execute(self, conn: sqlite3.Connection, steps: Plan[T]) -> T:
        try:
            statement = next(steps)
            while True:
                cursor = conn.execute(self._queries[statement.name], _adapt(statement.params))
                rows = cursor.fetchall() if cursor.description else []
                statement = steps.send(Result(rows, cursor.rowcount))
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    # -- worker thread ----------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._connection is None:
            raise StoreError("the SQLite store is closed")
        return self._connection

    def _connect(self) -> None:
        if self.path != MEMORY:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
        conn.row_factory = _dict_row
        conn.create_function("now_ms", 0, self._clock_ms)
        conn.create_function("notify", 2, self._queue_notification)
        conn.executescript(self._queries["configure_connection"])
        self._connection = conn

    def _disconnect(self) -> None:
        conn, self._connection = self._connection, None
        if conn is not None:
            conn.close()

    def _queue_notification(self, kind: str, detail: str) -> None:
        """SQL ``notify(kind, detail)``, called by the triggers of migration 0002."""
        self._pending.append((kind, detail))

    def _deliver(self) -> None:
        """Hand the committed transaction's notifications to the event loop's handlers."""
        pending, self._pending = self._pending, []
        loop = self._loop
        if not pending or not self._handlers or loop is None:
            return
        for kind, detail in pending:
            for handler in list(self._handlers):
                try:
                    loop.call_soon_threadsafe(handler, kind, detail)
                except RuntimeError:  # the loop is closed: nobody is listening any more
                    return
