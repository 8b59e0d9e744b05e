"""What the `saga` commands share: their options, output (tables or JSON), error handling, and
where a read or steering command goes (the database, or a running service with --url)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import enum
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orchestrator.app import Orchestrator
from orchestrator.config import Settings, resolve_database_url
from orchestrator.errors import OrchestratorError

if TYPE_CHECKING:
    from orchestrator.http.client import ServiceClient

T = TypeVar("T")

console = Console()
errors = Console(stderr=True)

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar=["ORCHESTRATOR_DATABASE_URL", "DATABASE_URL"],
        help="postgresql://… or sqlite:///path (default: ./.orchestrator/<app>.db)",
    ),
]
AppName = Annotated[str, typer.Option("--app-name", help="names the embedded SQLite file")]
Schema = Annotated[str, typer.Option("--schema", help="PostgreSQL schema")]
AsJson = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]
ServiceUrl = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="ORCHESTRATOR_URL",
        help="a running service (saga up) to ask instead of the database, e.g. http://127.0.0.1:8000",
    ),
]
ApiKey = Annotated[
    str | None,
    typer.Option("--api-key", envvar="ORCHESTRATOR_API_KEY", help="the service's bearer key"),
]


def run(work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work``; an orchestrator error becomes a one-line message and exit code 1."""
    try:
        return asyncio.run(work())  # type: ignore[arg-type]
    except OrchestratorError as exc:
        fail(exc)
        raise typer.Exit(1) from None


def fail(exc: OrchestratorError) -> None:
    """Print ``exc`` as one line on stderr (never wrapped: scripts grep it)."""
    errors.print(f"[red]error[/red] ({exc.code}): {escape(exc.message)}", soft_wrap=True)


def database_url_of(database_url: str | None, app_name: str) -> str:
    return database_url or resolve_database_url(app_name, Settings())


def plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    return value


def print_rows(rows: list[Any], columns: list[str], as_json: bool, title: str) -> None:
    """``rows`` as a table of ``columns``, or as JSON for scripts."""
    if as_json:
        console.print_json(json.dumps(plain(rows)))
        return
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        values = plain(row)
        table.add_row(*("" if values[c] is None else str(values[c]) for c in columns))
    console.print(table)


def call_service(url: str, api_key: str | None, call: Callable[[ServiceClient], Awaitable[T]]) -> T:
    """Run ``call`` against the service at ``url`` (errors as in ``run``)."""

    from orchestrator.http.client import ServiceClient  # FastAPI loads only for --url

    async def work() -> T:
        async with ServiceClient(url, api_key=api_key) as client:
            return await call(client)

    return run(work)


@dataclasses.dataclass(frozen=True)
class Where:
    """Where a read or steering command goes: the database (as an inspector), or the service
    at ``url`` when one is given."""

    database_url: str | None
    app_name: str
    schema: str
    url: str | None
    api_key: str | None


def ask(
    where: Where,
    local: Callable[[Orchestrator], Awaitable[T]],
    remote: Callable[[ServiceClient], Awaitable[T]],
) -> T:
    """``remote(client)`` against the service with ``--url``, else ``local(app)`` against the
    database."""
    if where.url:
        return call_service(where.url, where.api_key, remote)

    async def work() -> T:
        async with inspector(where.database_url, where.app_name, where.schema) as app:
            return await local(app)

    return run(work)


def inspector(database_url: str | None, app_name: str, schema: str) -> Orchestrator:
    """An orchestrator for reading and steering: its own executor id recovers nothing."""
    return Orchestrator(
        app_name,
        database_url_of(database_url, app_name),
        executor_id="saga-cli",
        app_version="saga-cli",
        schema=schema,
    )
