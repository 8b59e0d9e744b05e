"""What the `saga` commands share: their options, output (tables or JSON, one time format),
error handling, and where a read or steering command goes (the database, or a running service
with --url), said when a workflow is not found there."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import enum
import json
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orchestrator.app import Orchestrator
from orchestrator.audit import Actor, acting_as, current_actor
from orchestrator.config import Settings, resolve_database_url
from orchestrator.errors import ConfigurationError, OrchestratorError, redact_credentials

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
AppName = Annotated[
    str | None,
    typer.Option(
        "--app-name",
        envvar="ORCHESTRATOR_APP_NAME",
        help="names the embedded SQLite file (default: the app whose file under the data "
        "directory, ./.orchestrator/, changed last; `make demo`'s is shop)",
    ),
]
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


DEFAULT_APP_NAME = "orchestrator"


def run(work: Callable[[], Awaitable[T]], looked_in: Callable[[], str] | None = None) -> T:
    """Run ``work``; an orchestrator error becomes a one-line message and exit code 1 (one
    that found nothing says where it ``looked_in``)."""
    try:
        return asyncio.run(work())  # type: ignore[arg-type]
    except OrchestratorError as exc:
        if looked_in and exc.http_status == 404:
            elsewhere = "--app-name, --database-url or --url look elsewhere"
            exc.message = f"{exc.message}; looked in {looked_in()} ({elsewhere})"
        fail(exc)
        raise typer.Exit(1) from None


def fail(exc: OrchestratorError) -> None:
    """Print ``exc`` as one line on stderr (never wrapped: scripts grep it)."""
    errors.print(f"[red]error[/red] ({exc.code}): {escape(exc.message)}", soft_wrap=True)


def app_name_of(database_url: str | None, app_name: str | None, *, existing: bool = True) -> str:
    """``app_name``; else, on the embedded store, the one app with a SQLite file under the
    data directory (``saga workflows list`` after ``make demo`` reads the shop's); else
    ``orchestrator``.

    Raises:
        ConfigurationError: several apps have a file there (which one is meant?), or, when
            ``existing``, none has (reading would only create an empty one).
    """
    if app_name:
        return app_name
    settings = Settings()
    if database_url or settings.database_url:
        return DEFAULT_APP_NAME  # names nothing on PostgreSQL
    folder = settings.data_dir
    names = sorted(f.stem for f in folder.glob("*.db")) if folder.is_dir() else []
    if len(names) == 1:
        return names[0]
    if len(names) > 1:
        raise ConfigurationError(
            f"{folder}/ holds the embedded databases of several apps ({', '.join(names)}): "
            "choose one with --app-name NAME (or ORCHESTRATOR_APP_NAME)"
        )
    if existing:
        raise ConfigurationError(
            f"no embedded database under {folder}/ (run `make demo` first, or pass "
            "--database-url, or --url for a running service)"
        )
    return DEFAULT_APP_NAME


def database_url_of(database_url: str | None, app_name: str | None) -> str:
    return database_url or resolve_database_url(app_name_of(database_url, app_name), Settings())


def format_time(value: dt.datetime | str) -> str:
    """The one format of times in the CLI's output, whether they come from the database (a
    datetime) or from the service (ISO 8601 text): UTC, milliseconds, ``Z``."""
    when = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _is_time_field(name: str) -> bool:
    return name.endswith("_at") or name in ("deadline", "last_tick")


def plain(value: Any) -> Any:
    """``value`` as JSON values: dataclasses and lists of them (the local API) or the service's
    JSON answers alike, times in ``format_time``'s format."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {k: _field(k, v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return _value(value)


def _field(name: str, value: Any) -> Any:
    if _is_time_field(name) and isinstance(value, str):
        try:
            return format_time(value)
        except ValueError:
            return value
    if name in ("input", "output"):
        return _value(value)  # the workflow's own data: kept as it is
    return plain(value)


def _value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return format_time(value)
    if isinstance(value, enum.Enum):
        return value.value
    return value


def text_of(value: Any) -> str:
    """A value as a table cell or a ``get`` line: JSON for data, plain text for the rest."""
    if value is None:
        return ""
    if isinstance(value, dict | list | bool | int | float):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def print_rows(
    rows: list[Any], columns: list[str], as_json: bool, title: str, source: str | None = None
) -> None:
    """``rows`` as a table of ``columns`` (``source`` under it: where they were read), or as
    JSON for scripts."""
    if as_json:
        console.print_json(json.dumps(plain(rows)))
        return
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        values = plain(row)
        table.add_row(*(escape(text_of(values[c])) for c in columns))
    console.print(table)
    if source is not None:
        console.print(f"{len(rows)} row(s) from {escape(source)}", highlight=False, soft_wrap=True)


def call_service(url: str, api_key: str | None, call: Callable[[ServiceClient], Awaitable[T]]) -> T:
    """Run ``call`` against the service at ``url`` (errors as in ``run``)."""

    from orchestrator.http.client import ServiceClient  # FastAPI loads only for --url

    async def work() -> T:
        async with ServiceClient(
            url, api_key=api_key, actor=cli_actor().name, surface="cli"
        ) as client:
            return await call(client)

    return run(work, looked_in=lambda: f"the service at {url}")


@dataclasses.dataclass(frozen=True)
class Where:
    """Where a read or steering command goes: the database (as an inspector), or the service
    at ``url`` when one is given."""

    database_url: str | None
    app_name: str | None
    schema: str
    url: str | None
    api_key: str | None

    def describe(self) -> str:
        """Where it goes, for people: the service's URL, or the database (password
        redacted) with the app name (SQLite) or the schema (PostgreSQL)."""
        if self.url:
            return f"the service at {self.url}"
        given = self.database_url or Settings().database_url
        if given is None:
            name = app_name_of(None, self.app_name)
            url = database_url_of(None, name)
            return f"{url} (app {name})"
        url = redact_credentials(given)
        return url if url.startswith("sqlite") else f"{url} (schema {self.schema})"


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
            with acting_as(cli_actor()):  # the audit log says who, from the CLI
                return await local(app)

    return run(work, looked_in=where.describe)


def cli_actor() -> Actor:
    """Who acts from the CLI: ``ORCHESTRATOR_ACTOR`` if set, else the login user."""
    name = os.environ.get("ORCHESTRATOR_ACTOR") or current_actor().name
    return Actor(name, surface="cli")


def inspector(database_url: str | None, app_name: str | None, schema: str) -> Orchestrator:
    """An orchestrator for reading and steering: its own executor id recovers nothing."""
    return Orchestrator(
        app_name_of(database_url, app_name),
        database_url_of(database_url, app_name),
        executor_id="saga-cli",
        app_version="saga-cli",
        schema=schema,
    )
