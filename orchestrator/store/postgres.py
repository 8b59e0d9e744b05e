"""The PostgreSQL store: psycopg 3 async, a connection pool, LISTEN/NOTIFY wake-ups; its
hot-path writes group-committed (postgres_writes.py). Through a transaction pooler
(PgBouncer ``pool_mode=transaction``) the pool sends no connect options and prepares no
statements, and the session-bound connections (LISTEN, the migration lock) go direct."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import psycopg
from psycopg import errors, sql
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

from orchestrator.errors import (
    ConfigurationError,
    InvalidArgumentError,
    StoreError,
    StoreUnavailableError,
    WorkflowNotFoundError,
    redact_credentials,
)
from orchestrator.store.base import (
    NOTIFY_RECONNECTED,
    MessageSealer,
    MigrationState,
    NewWorkflow,
    NotificationHandler,
    StepRecord,
    WorkflowRecord,
)
from orchestrator.store.migrate import migrate_postgres, postgres_migration_state
from orchestrator.store.plans import Plan, Result
from orchestrator.store.postgres_keepalives import keepalive_kwargs
from orchestrator.store.postgres_pooling import (
    POOLED_POLL_SECONDS,
    check_pooled_settings,
    check_same_database,
    check_session_schema,
    pooled_connection_kwargs,
    refuse_pending_migrations,
)
from orchestrator.store.postgres_transactions import CallerTransactions
from orchestrator.store.postgres_writes import PostgresWrites
from orchestrator.store.queries import load_queries
from orchestrator.store.sql import SQLStore
from orchestrator.types import WorkflowStatus

T = TypeVar("T")

logger = logging.getLogger(__name__)

# Lower case only: the name goes unquoted into search_path; 50 leaves room for the channel name
# "<schema>_orchestrator" within PostgreSQL's 63-byte identifiers.
SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,49}$")
RECONNECT_TIMEOUT_SECONDS = 60.0  # give up (StoreUnavailableError) after this long
RETRY_MAX_WAIT_SECONDS = 5.0  # cap between two retries of an operation
LISTEN_MAX_WAIT_SECONDS = 1.0  # cap between two reconnection tries of the LISTEN connection
CONNECT_TIMEOUT_SECONDS = 10  # libpq connect_timeout
# Our transactions are a few statements sent back to back: idle inside one for this long means
# the process stopped (see the pool's options).
IDLE_IN_TRANSACTION_MS = 5000
POOL_TIMEOUT_SECONDS = 10.0  # wait for a pooled connection before counting a failed try
# Connections kept checked out, most recently used first, in front of the (FIFO) pool: a hot
# path that always reuses the last connection talks to a backend that is awake and cached. On
# 2 cores, rotating one workflow's statements over 2 backends costs ~0.03 ms each (bench/).
WARM_CONNECTIONS = 4
WARM_MAX_SECONDS = 60.0  # a warm connection goes back to the pool (its lifetime checks) after
# Connection failures worth retrying: class 08 (connection exception), the server shutting
# down or restarting (57P01-57P03), too many connections (53300). No sqlstate: client side.
_RETRYABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300")


_SET_CLOCK = "SELECT set_config('orchestrator.now_ms', %s, false)"
# Statements never prepared: psycopg prepares a statement on its fifth execution on a
# connection, and PostgreSQL keeps the plan it makes then. An UPDATE of the workflows table
# joined to its input cannot be pinned to the key index the way the lookups of the other
# batch statements are (a LATERAL ... LIMIT 1 per row): planned while the table was small
# (a fresh database), it read every running workflow on each execution as the table grew
# (auto_explain: 10-14 ms per statement at 60,000). Planned each time, it sees the table as it
# is now, for ~0.1 ms.
PLANNED_EACH_TIME = frozenset({"finish_workflows_batch"})


def is_connection_error(error: BaseException) -> bool:
    """True for a lost or impossible connection (retried), False for any other error (an
    unusable connection string among them: retrying cannot fix it)."""
    if not isinstance(error, psycopg.OperationalError):
        return False
    if error.sqlstate is None:
        return not _CONNINFO_ERROR.search(str(error))
    return error.sqlstate.startswith(_RETRYABLE_SQLSTATES)


class PostgresStore(SQLStore):
    """A Store on PostgreSQL; its tables live in ``schema`` (created by the first migration).

    Args:
        url: a libpq connection URL (``postgresql://user:password@host:5432/dbname``).
        schema: the schema holding the tables; lower-case letters, digits and underscores.
        min_size: connections the pool keeps open.
        max_size: connections the pool may open.
        reconnect_timeout: seconds to keep retrying a lost connection before raising
            StoreUnavailableError.
        clock_ms: the time SQL's ``now_ms()`` reads, epoch milliseconds (a test's FakeClock);
            the database's own clock if None.
        sealer: seals messages sent by business key for their receiver (see MessageSealer).
        read_only: for reads only (a streaming replica): open() migrates nothing and starts
            no group commit, and every session is read-only (a write fails at once).
        transaction_pooled: ``url`` is a transaction pooler's (PgBouncer
            ``pool_mode=transaction``): its sessions are shared between transactions, so the
            pool sends no connect options (search_path must come from the role's settings:
            checked at open) and never prepares statements.
        direct_url: a URL straight to the server for what needs a session of its own: the
            LISTEN connection and the migration lock. Without it a pooled store hears no
            other process (its waits poll every POOLED_POLL_SECONDS) and does not migrate
            (pending migrations raise ConfigurationError at open).
    """

    def __init__(
        self,
        url: str,
        *,
        schema: str = "orchestrator",
        min_size: int = 2,
        max_size: int = 20,
        reconnect_timeout: float = RECONNECT_TIMEOUT_SECONDS,
        clock_ms: Callable[[], int] | None = None,
        sealer: MessageSealer | None = None,
        read_only: bool = False,
        transaction_pooled: bool = False,
        direct_url: str | None = None,
    ) -> None:
        driver = PostgresDriver(
            url,
            schema=schema,
            min_size=min_size,
            max_size=max_size,
            reconnect_timeout=reconnect_timeout,
            clock_ms=clock_ms,
            read_only=read_only,
            transaction_pooled=transaction_pooled,
            direct_url=direct_url,
        )
        super().__init__(driver, sealer)
        self.url = url
        self.schema = schema
        self.read_only = read_only
        self.writes = PostgresWrites(driver.run, driver.all, driver.one)

    async def open(self) -> None:
        """Apply pending migrations, then open the pool and start the group commit (read-only:
        only open the pool)."""
        await self.driver.open()
        if not self.read_only:
            self.writes.start()

    async def close(self) -> None:
        """Commit what is pending, stop listening, close every connection (idempotent)."""
        await self.writes.stop()
        await self.driver.close()

    # -- the hot path: group-committed, or one statement where others need several --------
    async def record_step(self, step: StepRecord) -> WorkflowStatus | None:
        """Record a step (see Store.record_step), sharing a commit with concurrent ones."""
        return await self.writes.record_step(step)

    async def create_workflow(self, new: NewWorkflow) -> tuple[WorkflowRecord, bool]:
        """Insert a new workflow (see Store.create_workflow), sharing a commit; one with
        attributes takes its own transaction (it claims the messages kept for them)."""
        if new.attributes:
            return await super().create_workflow(new)
        return await self.writes.create_workflow(new)

    async def finish_workflow(
        self,
        workflow_id: str,
        status: WorkflowStatus,
        *,
        output: str | None = None,
        error: str | None = None,
        epoch: int | None = None,
    ) -> bool:
        """Write a final status (see Store.finish_workflow), sharing a commit."""
        return await self.writes.finish_workflow(
            workflow_id, status, output=output, error=error, epoch=epoch
        )

    async def finish_after_step(
        self, step: StepRecord, output: str | None, *, recv_topic: str | None = None
    ) -> bool | None:
        """Record the last step and write SUCCESS in one statement, sharing a commit."""
        return await self.writes.finish_after_step(step, output, recv_topic)

    async def send_message(
        self,
        destination_id: str,
        topic: str,
        payload: str,
        idempotency_key: str | None,
        step: StepRecord | None = None,
    ) -> bool:
        """Add a message (and record ``step``) in one round trip (see Store.send_message)."""
        return await self.writes.send_message(destination_id, topic, payload, idempotency_key, step)

    async def deliver_message(
        self, destination_id: str, topic: str, payload: str, step: StepRecord
    ) -> bool:
        """A send to a recv parked in this process (see Store.deliver_message): one
        statement, shared with concurrent ones."""
        return await self.writes.deliver_message(destination_id, topic, payload, step)

    async def recv_message(
        self, workflow_id: str, topic: str, step: StepRecord, otherwise: StepRecord | None = None
    ) -> str | None:
        """Consume the oldest message and record ``step`` with it, both or neither (or, with
        none waiting, record ``otherwise``): one statement."""
        return await self.writes.recv_message(workflow_id, topic, step, otherwise)

    async def set_event(
        self, workflow_id: str, key: str, value: str, step: StepRecord | None
    ) -> None:
        """Upsert the event and record ``step``: one round trip."""
        if step is None:
            await super().set_event(workflow_id, key, value, step)
        else:
            await self.writes.set_event(workflow_id, key, value, step)


class PostgresDriver:
    """The connections of a PostgresStore: a pool (with a few warm connections in front), the
    LISTEN connection, and the one place psycopg errors are retried and translated."""

    dialect = "postgres"
    poll_seconds: float | None = None  # every process's writes are notified (LISTEN/NOTIFY)

    def __init__(
        self,
        url: str,
        *,
        schema: str = "orchestrator",
        min_size: int = 2,
        max_size: int = 20,
        reconnect_timeout: float = RECONNECT_TIMEOUT_SECONDS,
        clock_ms: Callable[[], int] | None = None,
        read_only: bool = False,
        transaction_pooled: bool = False,
        direct_url: str | None = None,
    ) -> None:
        if not SCHEMA_NAME.match(schema):
            raise InvalidArgumentError(
                f"invalid schema name {schema!r}: use 1-50 lower-case letters, digits and"
                " underscores, not starting with a digit"
            )
        if not 0 < min_size <= max_size:
            raise InvalidArgumentError("need 0 < min_size <= max_size")
        if transaction_pooled:
            check_pooled_settings(url, direct_url, clock_ms)
        self.url = url
        self.transaction_pooled = transaction_pooled
        self.direct_url = direct_url
        # Session-bound connections (LISTEN, the migration lock): direct when a URL is given.
        self._session_url = direct_url or url
        self._hears_others = direct_url is not None or not transaction_pooled
        if not self._hears_others:
            self.poll_seconds = POOLED_POLL_SECONDS
        self.schema = schema
        self.channel = f"{schema}_orchestrator"
        self.min_size = min_size
        self.max_size = max_size
        self._slots = asyncio.Semaphore(max_size)
        self.reconnect_timeout = reconnect_timeout
        self.connection_failures = 0  # statements that met a lost connection (Store)
        self._clock_ms = clock_ms
        self.read_only = read_only
        self.queries = load_queries("postgres")
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[DictRow]] | None = None
        self._handlers: list[NotificationHandler] = []
        self._listener: asyncio.Task[None] | None = None
        self._listen_lock = asyncio.Lock()  # one LISTEN connection even if listen() races
        # (connection, when it left the pool): reused last-in first-out, see WARM_CONNECTIONS.
        self._warm: list[tuple[psycopg.AsyncConnection[DictRow], float]] = []
        self._database: str | None = None  # current_database() of the pool, once asked
        self._callers = CallerTransactions(
            schema=schema,
            queries=self.queries,
            database=self.database,
            translate=self._translate,
            clock_ms=clock_ms,
        )

    # -- life cycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Apply pending migrations, then open the pool (without waiting for connections);
        through a transaction pooler, check its sessions resolve names in the schema."""
        if self._pool is not None:
            return
        if self.transaction_pooled and self.direct_url is not None:
            await self._attempt(  # before migrating through it
                lambda: check_same_database(
                    self._connect, self.url, self.direct_url, self.queries["session_schema"]
                )
            )
        if self._hears_others and not self.read_only:  # a replica is migrated by its primary
            await self.migrate()
        kwargs: dict[str, Any] = {
            "autocommit": True,
            "row_factory": dict_row,
            # A pool session left idle inside a transaction (its process paused by SIGSTOP
            # or a long GC between two statements) is aborted by PostgreSQL, so the locks
            # it holds (a queue's dequeue lock, a row) do not freeze every other worker.
            "options": f"-c search_path={self.schema}"
            f" -c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS}"
            + (" -c default_transaction_read_only=on" if self.read_only else ""),
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            **keepalive_kwargs(self.url),  # a vanished host is noticed in ~25 s
        }
        if self.transaction_pooled:
            kwargs = pooled_connection_kwargs(kwargs)
        pool: AsyncConnectionPool[psycopg.AsyncConnection[DictRow]] = AsyncConnectionPool(
            self.url,
            min_size=self.min_size,
            max_size=self.max_size,
            kwargs=kwargs,
            connection_class=psycopg.AsyncConnection[DictRow],
            check=None,  # no ping per checkout: a dead connection fails, is dropped, retried
            timeout=min(POOL_TIMEOUT_SECONDS, max(self.reconnect_timeout, 0.1)),
            open=False,
            name=f"orchestrator-{self.schema}",
        )
        await pool.open(wait=False)
        self._pool = pool
        if self.transaction_pooled:
            try:
                check_session_schema(await self.one("session_schema", {}), self.schema)
                if not self._hears_others:
                    refuse_pending_migrations(await self.migration_state(), self.schema)
            except BaseException:
                await self.close()
                raise

    async def close(self) -> None:
        """Stop listening and close every connection (idempotent)."""
        await self._cool()
        listener, self._listener = self._listener, None
        self._handlers.clear()
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        pool, self._pool = self._pool, None
        if pool is not None:
            await self._cool(pool)  # a call that ended meanwhile may have kept one warm
            await pool.close()

    async def migrate(self) -> list[str]:
        """Apply pending migrations under the schema's advisory lock (a session lock: on the
        direct URL; through a transaction pooler without one, refuse if any is pending)."""
        if not self._hears_others:  # pooled, no direct URL
            refuse_pending_migrations(await self.migration_state(), self.schema)
            return []

        async def run() -> list[str]:
            async with await self._connect_session() as conn:
                return await migrate_postgres(conn, self.schema)

        return await self._attempt(run)

    async def migration_state(self) -> MigrationState:
        """What is applied and what is available (works before open(), too)."""

        async def run() -> MigrationState:
            if self._pool is not None:
                async with self._pool.connection() as conn:
                    return await postgres_migration_state(conn)
            async with await self._connect_session() as conn:
                return await postgres_migration_state(conn)

        return await self._attempt(run)

    async def _connect_session(self) -> psycopg.AsyncConnection[Any]:
        """A connection of its own with search_path set: direct, or through the pooler (whose
        sessions take search_path from the role's settings) when there is no direct URL."""
        if self._hears_others:
            return await self._connect(self._session_url, options=f"-c search_path={self.schema}")
        return await self._connect(self.url, prepare_threshold=None)

    async def listen(self, handler: NotificationHandler) -> None:
        """Deliver notifications to ``handler`` until close(), from one LISTEN connection
        (none through a transaction pooler without a direct URL: waits poll instead)."""
        async with self._listen_lock:
            if not self._hears_others:
                if not self._handlers:
                    logger.warning(
                        "database_pooling='transaction' without direct_database_url: no"
                        " LISTEN connection, so other processes' writes are seen by polling"
                        " (every %g s); set ORCHESTRATOR_DIRECT_DATABASE_URL for wake-ups",
                        POOLED_POLL_SECONDS,
                    )
            elif self._listener is None:
                conn = await self._attempt(self._connect_listener)
                self._listener = asyncio.create_task(
                    self._listen_loop(conn), name=f"orchestrator-listen-{self.schema}"
                )
            self._handlers.append(handler)

    # -- running operations -----------------------------------------------------------------

    async def run(self, plan: Callable[[], Plan[T]], *, transaction: bool) -> T:
        async def run() -> T:
            async with self._connection() as conn:
                if not transaction:
                    return await self._execute(conn, plan())
                async with conn.transaction():
                    return await self._execute(conn, plan())

        return await self._attempt(run)

    async def run_in(self, connection: object, plan: Callable[[], Plan[T]]) -> T:
        """Drive ``plan()`` on the caller's connection, in its transaction (see
        postgres_transactions.py): never retried, never committed here."""
        return await self._callers.run(connection, plan)

    async def database(self) -> str:
        """The name of the database the store's pool connects to."""
        if self._database is None:
            row = await self.one("connection_target", {"workflows_table": None})
            self._database = str(row["database"])
        return self._database

    async def all(self, query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Run one named statement in autocommit and return all its rows."""

        prepare = False if query in PLANNED_EACH_TIME else None

        async def run() -> list[dict[str, Any]]:
            async with self._connection() as conn:
                cursor = await conn.execute(self.queries[query], params, prepare=prepare)
                return await cursor.fetchall()

        return await self._attempt(run)

    async def one(self, query: str, params: dict[str, Any]) -> dict[str, Any]:
        """Run one named statement (atomic by itself) in autocommit; its single row."""
        rows = await self.all(query, params)
        assert rows, f"{query} answers one row"
        return rows[0]

    async def _execute(self, conn: psycopg.AsyncConnection[DictRow], steps: Plan[T]) -> T:
        try:
            statement = next(steps)
            while True:
                cursor = await conn.execute(self.queries[statement.name], statement.params)
                rows = await cursor.fetchall() if cursor.description else []
                statement = steps.send(Result(rows, cursor.rowcount))
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[DictRow]]:
        """A pooled connection, the most recently used warm one first. Callers queue here first
        (FIFO, no timeout) so a busy pool is backpressure, not an error: the pool's own timeout
        then fires only when connections cannot be made (the database is unreachable), which
        is retried. One in use while the store closes goes back to the pool, which closes it."""
        pool = self._pool
        if pool is None:
            raise StoreError("the PostgreSQL store is not open: call open() first")
        async with self._slots:
            conn, since = (
                self._warm.pop() if self._warm else (await pool.getconn(), time.monotonic())
            )
            try:
                if self._clock_ms is not None:  # SQL's now_ms() reads it (migration 0005)
                    await conn.execute(_SET_CLOCK, (str(self._clock_ms()),))
                yield conn
            except BaseException:
                await pool.putconn(conn)  # the pool resets it, or drops it if it is broken
                raise
            if (
                self._pool is pool  # not closed meanwhile
                and len(self._warm) < WARM_CONNECTIONS
                and time.monotonic() - since < WARM_MAX_SECONDS
                and conn.info.transaction_status is TransactionStatus.IDLE
            ):
                self._warm.append((conn, since))
            else:
                await pool.putconn(conn)

    async def _cool(self, pool: AsyncConnectionPool[Any] | None = None) -> None:
        """Give the warm connections back to their pool (which drops broken ones)."""
        warm, self._warm = self._warm, []
        pool = pool or self._pool
        if pool is not None:
            for conn, _ in warm:
                await pool.putconn(conn)

    async def _attempt(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run ``operation``, the one place where psycopg errors are retried and translated.

        A lost or impossible connection is retried with exponential backoff (at most
        RETRY_MAX_WAIT_SECONDS apart) for ``reconnect_timeout`` seconds, then raises
        StoreUnavailableError. Any other database error raises StoreError at once.
        """
        try:  # the common case: one try, no retry machinery built
            return await operation()
        except psycopg.Error as error:
            if not is_connection_error(error):
                raise self._translate(error) from error
            self.connection_failures += 1
            logger.warning("PostgreSQL connection failed, retrying: %s", _describe(error))
        retrying = AsyncRetrying(
            retry=retry_if_exception(is_connection_error),
            wait=wait_exponential(multiplier=0.05, max=RETRY_MAX_WAIT_SECONDS),
            stop=stop_after_delay(self.reconnect_timeout),
            before_sleep=self._before_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await operation()
        except psycopg.Error as error:
            raise self._translate(error) from error
        raise AssertionError("unreachable: tenacity returns or raises")

    def _translate(self, error: psycopg.Error) -> Exception:
        """The orchestrator error for a psycopg error (the one place they are mapped). The
        message is the server's primary message (never the statement, never a password)."""
        if isinstance(error, errors.ForeignKeyViolation):
            return WorkflowNotFoundError("the workflow does not exist")
        if error.sqlstate is None and _CONNINFO_ERROR.search(str(error)):
            return ConfigurationError(
                f"the PostgreSQL connection string is not valid: {_describe(error)}; expected"
                " postgresql://user:password@host:5432/dbname"
            )
        if is_connection_error(error):
            return StoreUnavailableError(
                f"PostgreSQL unreachable for {self.reconnect_timeout:g} s: {_describe(error)}"
            )
        return StoreError(f"PostgreSQL: {_describe(error)}", sqlstate=error.sqlstate)

    async def _before_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        logger.warning(
            "PostgreSQL connection failed (try %d), retrying: %s",
            state.attempt_number,
            _describe(error) if isinstance(error, psycopg.Error) else error,
        )
        if self._pool is not None:
            # Drop every dead idle connection now rather than meeting them one try at a time.
            with contextlib.suppress(Exception):
                await self._cool()
                await self._pool.check()

    async def _connect(self, url: str, **kwargs: Any) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(
            url,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            **keepalive_kwargs(url),
            **kwargs,
        )

    # -- notifications ----------------------------------------------------------------------

    async def _connect_listener(self) -> psycopg.AsyncConnection[Any]:
        conn = await self._connect(self._session_url)  # with keepalives, as every connection
        try:
            listen = sql.SQL(self.queries["listen"]).format(channel=sql.Identifier(self.channel))
            await conn.execute(listen)
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _listen_loop(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Dispatch notifications; on a lost connection, reconnect and say so (RECONNECTED)."""
        try:
            while True:
                try:
                    async for notify in conn.notifies():
                        kind, _, detail = notify.payload.partition(":")
                        self._dispatch(kind, detail)
                except psycopg.Error as error:
                    logger.warning("LISTEN connection lost, reconnecting: %s", _describe(error))
                await conn.close()
                conn = await self._reconnect_listener()
                self._dispatch(NOTIFY_RECONNECTED, "")
        finally:
            await conn.close()

    async def _reconnect_listener(self) -> psycopg.AsyncConnection[Any]:
        delay = 0.05
        while True:
            try:
                return await self._connect_listener()
            except psycopg.Error as error:
                logger.debug(
                    "LISTEN reconnection failed, next try in %.2f s: %s", delay, _describe(error)
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, LISTEN_MAX_WAIT_SECONDS)

    def _dispatch(self, kind: str, detail: str) -> None:
        for handler in list(self._handlers):
            try:
                handler(kind, detail)
            except Exception:
                logger.exception("notification handler %r failed on %s", handler, kind)


def _describe(error: psycopg.Error) -> str:
    """A psycopg error for people: the server's primary message when there is one (not the
    statement or its parameters), else the client's text; passwords redacted either way."""
    primary = error.diag.message_primary if error.sqlstate else None
    text = f"{primary} ({error.sqlstate})" if primary else str(error).strip()
    text = text.splitlines()[0] if text else type(error).__name__
    if _CONNINFO_ERROR.search(text):  # libpq quotes pieces of the connection string
        text = _QUOTED.sub('"…"', text)
    return redact_credentials(text)


_CONNINFO_ERROR = re.compile(
    r"connection info string|connection option|invalid URI|URI query|invalid [a-z_]+ value"
    r"|invalid port"
)
_QUOTED = re.compile(r'(?<!option )"[^"]*"')  # a value (maybe a password), not an option name
