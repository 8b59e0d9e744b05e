"""Durable stores: the Store protocol, its PostgreSQL and SQLite implementations, create_store."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from orchestrator.errors import ConfigurationError, redact_credentials
from orchestrator.store.base import (
    NOTIFY_EVENT,
    NOTIFY_MESSAGE,
    NOTIFY_RECONNECTED,
    NOTIFY_STREAM,
    NOTIFY_UNCLAIMED,
    NOTIFY_WORKFLOW,
    SEPARATOR,
    KeyedDelivery,
    MessageSealer,
    MigrationState,
    NewWorkflow,
    NotificationHandler,
    StepRecord,
    Store,
    StreamEntry,
    WorkflowQuery,
    WorkflowRecord,
)
from orchestrator.store.sqlite import SQLiteStore

if TYPE_CHECKING:
    from orchestrator.store.postgres import PostgresStore

__all__ = [
    "NOTIFY_EVENT",
    "NOTIFY_MESSAGE",
    "NOTIFY_RECONNECTED",
    "NOTIFY_STREAM",
    "NOTIFY_UNCLAIMED",
    "NOTIFY_WORKFLOW",
    "SEPARATOR",
    "KeyedDelivery",
    "MessageSealer",
    "MigrationState",
    "NewWorkflow",
    "NotificationHandler",
    "PostgresStore",
    "SQLiteStore",
    "StepRecord",
    "Store",
    "StreamEntry",
    "WorkflowQuery",
    "WorkflowRecord",
    "create_store",
]

_POSTGRES_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://")
_SQLITE_PREFIX = "sqlite:///"
ACCEPTED_URLS = (
    "postgresql://user:password@host:5432/dbname (also postgres:// and postgresql+psycopg://),"
    " sqlite:///relative/path.db, sqlite:////absolute/path.db or sqlite:///:memory:"
)


def create_store(
    database_url: str,
    *,
    schema: str = "orchestrator",
    clock_ms: Callable[[], int] | None = None,
    sealer: MessageSealer | None = None,
    read_only: bool = False,
    transaction_pooled: bool = False,
    direct_url: str | None = None,
    pool_size: int | None = None,
) -> Store:
    """The store for ``database_url`` (not opened yet: ``await store.open()``).

    Args:
        database_url: a PostgreSQL URL or an SQLite one (see ``ACCEPTED_URLS``).
        schema: the PostgreSQL schema holding the tables (ignored by SQLite).
        clock_ms: the time the store's SQL reads (``now_ms()``), epoch milliseconds: a test's
            FakeClock; the database's own clock if None.
        sealer: seals a message sent by business key for the workflow that gets it (given
            with a codec that has per-subject keys: see ``store/encoded.py``).
        read_only: a store for reads only (a replica's URL): never migrated, its sessions
            read-only; PostgreSQL only.
        transaction_pooled: ``database_url`` goes through a transaction pooler (PgBouncer
            ``pool_mode=transaction``); see PostgresStore. Ignored by SQLite.
        direct_url: a PostgreSQL URL straight to the server, for the LISTEN connection and
            the migration lock (see PostgresStore). Ignored by SQLite.
        pool_size: the most pooled connections PostgreSQL's store opens (at least 2; the
            LISTEN connection comes on top); None: PostgresStore's default. Ignored by SQLite.

    Raises:
        ConfigurationError: the URL is neither form (or, ``read_only``, not PostgreSQL's), or
            ``direct_url`` is not PostgreSQL's.
    """
    url = database_url.strip()
    for scheme in _POSTGRES_SCHEMES:
        if url.startswith(scheme):
            from orchestrator.store.postgres import PostgresStore

            sizes = {} if pool_size is None else {"min_size": 2, "max_size": pool_size}
            return PostgresStore(
                "postgresql://" + url.removeprefix(scheme),
                **sizes,
                schema=schema,
                clock_ms=clock_ms,
                sealer=sealer,
                read_only=read_only,
                transaction_pooled=transaction_pooled,
                direct_url=None if direct_url is None else _postgres_url(direct_url),
            )
    if read_only:
        raise ConfigurationError(
            f"read_database_url {redact_credentials(database_url)!r} is not a PostgreSQL URL:"
            " listings read from a PostgreSQL replica (postgresql://user:password@host:5432/"
            "dbname); leave it unset to read from the database itself"
        )
    if url.startswith(_SQLITE_PREFIX):
        path = url.removeprefix(_SQLITE_PREFIX).split("?", 1)[0]
        if path:
            return SQLiteStore(path, clock_ms=clock_ms, sealer=sealer)
    raise ConfigurationError(
        f"unsupported database URL {redact_credentials(database_url)!r}; use one of:"
        f" {ACCEPTED_URLS}"
    )


def _postgres_url(database_url: str) -> str:
    url = database_url.strip()
    for scheme in _POSTGRES_SCHEMES:
        if url.startswith(scheme):
            return "postgresql://" + url.removeprefix(scheme)
    raise ConfigurationError(
        f"direct_database_url {redact_credentials(database_url)!r} is not a PostgreSQL URL;"
        " use postgresql://user:password@host:5432/dbname, the server itself (not the pooler)"
    )


def __getattr__(name: str) -> Any:
    """``PostgresStore`` on first use (PEP 562): psycopg, its pool and tenacity take a fifth of
    ``import orchestrator``, which a process on SQLite (a CLI command, a test) never needs."""
    if name == "PostgresStore":
        from orchestrator.store.postgres import PostgresStore

        globals()[name] = PostgresStore
        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
