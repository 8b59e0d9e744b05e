"""The PostgreSQL store behind a transaction pooler (PgBouncer ``pool_mode = transaction``),
whose server sessions serve one transaction of one client, then another client's: what the
pooled connections must not send, and the checks at open that refuse a setup that could not
work, each error saying what to change (docs/operations.md#pgbouncer)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, LiteralString

import psycopg
from psycopg.rows import dict_row

from orchestrator.errors import ConfigurationError
from orchestrator.store.base import MigrationState

# Without a direct URL nothing is notified across processes: waits for messages and events
# look again this often (queues and results re-check every second anyway).
POOLED_POLL_SECONDS = 1.0
_DOCS = "docs/operations.md#pgbouncer"


def check_pooled_settings(
    url: str, direct_url: str | None, clock_ms: Callable[[], int] | None
) -> None:
    """Refuse what a transaction pooler cannot carry, at construction."""
    if clock_ms is not None:
        raise ConfigurationError(
            "a test clock (Orchestrator(clock=...)) sets a session setting on each"
            " connection, which a transaction pooler would hand to other clients: use a"
            " direct database URL (database_pooling='session') with a test clock"
        )
    if direct_url == url:
        raise ConfigurationError(
            "direct_database_url is database_url, the pooler's: give the server's own URL"
            " (LISTEN and the migration lock through a transaction pooler would be lost)"
        )


def pooled_connection_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The pool's connection arguments for a pooler: PgBouncer refuses the ``options``
    startup parameter (the role's settings give search_path, its idle_transaction_timeout
    the timeout), and a statement psycopg prepared on one server session is missing, or
    already there, on the next (PgBouncer < 1.21): nothing is prepared."""
    pooled = {name: value for name, value in kwargs.items() if name != "options"}
    pooled["prepare_threshold"] = None
    return pooled


async def check_same_database(
    connect: Callable[..., Awaitable[psycopg.AsyncConnection[Any]]],
    url: str,
    direct_url: str | None,
    query: LiteralString,
) -> None:
    """The direct URL and the pooler's must reach one database: a LISTEN on another would
    never hear this one's notifications, and migrations would go elsewhere. ``connect(url,
    **kwargs)`` opens a connection; ``query`` is ``session_schema``."""
    names = []
    for target, options in ((url, {"prepare_threshold": None}), (direct_url, {})):
        assert target is not None
        async with await connect(target, row_factory=dict_row, **options) as conn:
            row = await (await conn.execute(query)).fetchone()
            assert row is not None, "session_schema answers one row"
            names.append(str(row["database"]))
    pooled, direct = names
    if pooled != direct:
        raise ConfigurationError(
            f"direct_database_url reaches database {direct!r} but database_url (the pooler)"
            f" reaches {pooled!r}: they must be one database, one URL straight to the server"
            " and one through the pooler"
        )


def check_session_schema(session: dict[str, Any], schema: str) -> None:
    """Pooled sessions must resolve names in the store's schema by the role's settings
    (``session`` is the answer of the ``session_schema`` query on a pooled connection)."""
    if session["schema"] == schema:
        return
    fix = (
        f"ALTER ROLE {session['user']} IN DATABASE {session['database']} SET search_path ="
        f" {schema} (or set PgBouncer's connect_query); {_DOCS}"
    )
    if session["schema"] is None:
        raise ConfigurationError(
            "through a transaction pooler (database_pooling='transaction') the sessions"
            f" resolve names in no existing schema: migrate schema {schema!r} first"
            " (direct_database_url, or `saga migrate` on the server's own URL), and give the"
            f" role its search_path: {fix}"
        )
    raise ConfigurationError(
        "through a transaction pooler (database_pooling='transaction') sessions take"
        " search_path from the role's settings, not connect options, and the pooler's"
        f" sessions resolve names in schema {session['schema']!r}, not the store's"
        f" {schema!r}: {fix}"
    )


def refuse_pending_migrations(state: MigrationState, schema: str) -> None:
    """Without a direct URL nothing can take the migration lock (a session advisory lock)."""
    pending = [name for name in state.available if name not in state.applied]
    if pending:
        raise ConfigurationError(
            f"{len(pending)} migration(s) pending on schema {schema!r} ({', '.join(pending)}),"
            " and database_pooling='transaction' without direct_database_url cannot apply"
            " them (they run under a session advisory lock a transaction pooler cannot"
            " hold): set ORCHESTRATOR_DIRECT_DATABASE_URL to the server's own URL, or run"
            " `saga migrate --database-url <direct URL>` with ORCHESTRATOR_DATABASE_POOLING"
            f" unset ({_DOCS})"
        )
