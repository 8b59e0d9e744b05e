"""`saga`: the command line (Typer): migrate the database and inspect or steer workflows."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import enum
import importlib
import json
import os
import signal
import socket
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from orchestrator.app import Orchestrator
from orchestrator.config import Settings, resolve_database_url
from orchestrator.errors import OrchestratorError
from orchestrator.log_context import configure_logging
from orchestrator.store import create_store
from orchestrator.tracing import configure_tracing, tracing_requested

if TYPE_CHECKING:
    from orchestrator.http.client import ServiceClient

T = TypeVar("T")

cli = typer.Typer(help="saga-orchestrator: durable workflows and sagas.", no_args_is_help=True)
workflows_cli = typer.Typer(help="Inspect and steer workflows.", no_args_is_help=True)
cli.add_typer(workflows_cli, name="workflows")
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
OtlpEndpoint = Annotated[
    str | None,
    typer.Option(
        "--otlp-endpoint",
        help="export traces over OTLP/HTTP to this collector (e.g. http://jaeger:4318); "
        "default: on when OTEL_EXPORTER_OTLP_ENDPOINT is set",
    ),
]


def _run(work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work``; an orchestrator error becomes a one-line message and exit code 1."""
    try:
        return asyncio.run(work())  # type: ignore[arg-type]
    except OrchestratorError as exc:
        errors.print(f"[red]error[/red] ({exc.code}): {exc.message}")
        raise typer.Exit(1) from None


def _url(database_url: str | None, app_name: str) -> str:
    return database_url or resolve_database_url(app_name, Settings())


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    return value


def _print(rows: list[Any], columns: list[str], as_json: bool, title: str) -> None:
    if as_json:
        console.print_json(json.dumps(_plain(rows)))
        return
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        plain = _plain(row)
        table.add_row(*("" if plain[c] is None else str(plain[c]) for c in columns))
    console.print(table)


def _remote(url: str, api_key: str | None, call: Callable[[ServiceClient], Awaitable[T]]) -> T:
    """Run ``call`` against the service at ``url`` (errors as in ``_run``)."""

    from orchestrator.http.client import ServiceClient  # FastAPI loads only for --url

    async def work() -> T:
        async with ServiceClient(url, api_key=api_key) as client:
            return await call(client)

    return _run(work)


@dataclasses.dataclass(frozen=True)
class _Where:
    """Where a read or steering command goes: the database (as an inspector), or the service
    at ``url`` when one is given."""

    database_url: str | None
    app_name: str
    schema: str
    url: str | None
    api_key: str | None


def _ask(
    where: _Where,
    local: Callable[[Orchestrator], Awaitable[T]],
    remote: Callable[[ServiceClient], Awaitable[T]],
) -> T:
    """``remote(client)`` against the service with ``--url``, else ``local(app)`` against the
    database."""
    if where.url:
        return _remote(where.url, where.api_key, remote)

    async def work() -> T:
        async with _inspector(where.database_url, where.app_name, where.schema) as app:
            return await local(app)

    return _run(work)


def _inspector(database_url: str | None, app_name: str, schema: str) -> Orchestrator:
    """An orchestrator for reading and steering: its own executor id recovers nothing."""
    return Orchestrator(
        app_name,
        _url(database_url, app_name),
        executor_id="saga-cli",
        app_version="saga-cli",
        schema=schema,
    )


@cli.command()
def migrate(
    database_url: DatabaseUrl = None,
    app_name: AppName = "orchestrator",
    schema: Schema = "orchestrator",
) -> None:
    """Apply pending schema migrations (also done at every launch)."""

    async def work() -> tuple[str, ...]:
        store = create_store(_url(database_url, app_name), schema=schema)
        try:
            await store.open()  # applies pending migrations under the migration lock
            return (await store.migration_state()).applied
        finally:
            await store.close()

    applied = _run(work)
    console.print(f"schema up to date: {len(applied)} migration(s) applied ({', '.join(applied)})")


@workflows_cli.command("list")
def list_workflows(
    status: Annotated[str | None, typer.Option(help="e.g. PENDING, ERROR")] = None,
    name: Annotated[str | None, typer.Option(help="workflow name")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    database_url: DatabaseUrl = None,
    app_name: AppName = "orchestrator",
    schema: Schema = "orchestrator",
    as_json: AsJson = False,
    url: ServiceUrl = None,
    api_key: ApiKey = None,
) -> None:
    """List workflows, newest first."""
    rows: list[Any] = _ask(
        _Where(database_url, app_name, schema, url, api_key),
        lambda app: app.list_workflows(status=status, name=name, limit=limit),
        lambda client: client.list_workflows(status=status, name=name, limit=limit),
    )
    columns = ["workflow_id", "name", "status", "created_at", "error"]
    _print(rows, columns, as_json, "workflows")


@workflows_cli.command("get")
def get_workflow(
    workflow_id: str,
    database_url: DatabaseUrl = None,
    app_name: AppName = "orchestrator",
    schema: Schema = "orchestrator",
    as_json: AsJson = False,
    url: ServiceUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Show one workflow's status, input, output and error."""
    info: dict[str, Any] = _plain(
        _ask(
            _Where(database_url, app_name, schema, url, api_key),
            lambda app: app.retrieve(workflow_id).status(),
            lambda client: client.get_workflow(workflow_id),
        )
    )
    info.pop("links", None)  # the service's answer links to itself
    if as_json:
        console.print_json(json.dumps(info))
        return
    for key, value in info.items():
        console.print(f"[bold]{key:>20}[/bold]  {value}")


@workflows_cli.command("steps")
def list_steps(
    workflow_id: str,
    database_url: DatabaseUrl = None,
    app_name: AppName = "orchestrator",
    schema: Schema = "orchestrator",
    as_json: AsJson = False,
    url: ServiceUrl = None,
    api_key: ApiKey = None,
) -> None:
    """A workflow's recorded steps and compensations, in order."""
    rows: list[Any] = _ask(
        _Where(database_url, app_name, schema, url, api_key),
        lambda app: app.list_steps(workflow_id),
        lambda client: client.list_steps(workflow_id),
    )
    columns = ["step_number", "kind", "name", "status", "attempts", "compensates_step", "error"]
    _print(rows, columns, as_json, f"steps of {workflow_id}")


@workflows_cli.command("cancel")
def cancel_workflow(
    workflow_id: str,
    compensate: Annotated[bool, typer.Option(help="roll back completed steps")] = False,
    database_url: DatabaseUrl = None,
    app_name: AppName = "orchestrator",
    schema: Schema = "orchestrator",
    url: ServiceUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Cancel a workflow (it stops at its next durable call)."""
    _ask(
        _Where(database_url, app_name, schema, url, api_key),
        lambda app: app.cancel(workflow_id, compensate=compensate),
        lambda client: client.cancel(workflow_id, compensate=compensate),
    )
    console.print(f"cancelled {workflow_id}" + (" with rollback" if compensate else ""))


AppPath = Annotated[
    str | None,
    typer.Option(
        "--app",
        metavar="MODULE:ATTR",
        help="the Orchestrator whose code runs it here (or --url: the service runs it)",
    ),
]
Wait = Annotated[
    bool,
    typer.Option(
        help="run it here until it ends (--no-wait: hand it to the workers after launching)"
    ),
]


def _run_here(
    app: Orchestrator, operation: Callable[[Orchestrator], Awaitable[Any]], wait: bool
) -> None:
    """Launch ``app`` here, run ``operation`` (it returns a handle), then either wait for the
    workflow's end or shut down at once: the lease is released and a worker takes it over."""

    async def work() -> None:
        async with app:
            handle = await operation(app)
            console.print(f"workflow {handle.workflow_id} running")
            if wait:
                try:
                    result = await handle.result()
                except OrchestratorError as exc:
                    console.print(f"workflow {handle.workflow_id} ended: {exc.message}")
                    return
                console.print(f"workflow {handle.workflow_id} succeeded: {result!r}")
            else:
                await app.shutdown(0)

    _run(work)


def _runner(app_path: str | None, url: str | None) -> str:
    if (app_path is None) == (url is None):
        raise typer.BadParameter(
            "give either --app MODULE:ATTR (the workflow runs in this process) or --url "
            "(the service at that URL runs it)"
        )
    return app_path or ""


def _handed_over(answer: dict[str, Any]) -> None:
    console.print(f"workflow {answer['workflow_id']} {answer['status']} on the service")


@workflows_cli.command("resume")
def resume_workflow(
    workflow_id: str,
    app_path: AppPath = None,
    wait: Wait = True,
    url: ServiceUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Run a CANCELLED, ERROR or MAX_RECOVERY_ATTEMPTS_EXCEEDED workflow again from its last
    checkpoint (failed steps at the end are retried)."""
    target = _runner(app_path, url)
    if url:
        _handed_over(_remote(url, api_key, lambda c: c.resume(workflow_id)))
        return
    _run_here(load_app(target), lambda app: app.resume(workflow_id), wait)


@workflows_cli.command("fork")
def fork_workflow(
    workflow_id: str,
    app_path: AppPath = None,
    from_step: Annotated[int, typer.Option(min=1, help="re-execute from this step on")] = 1,
    new_id: Annotated[str | None, typer.Option(help="the new workflow's id")] = None,
    wait: Wait = True,
    url: ServiceUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Start a new workflow with the same input, reusing the steps recorded before --from-step."""
    target = _runner(app_path, url)
    if url:
        _handed_over(
            _remote(url, api_key, lambda c: c.fork(workflow_id, from_step, new_workflow_id=new_id))
        )
        return
    _run_here(
        load_app(target),
        lambda app: app.fork(workflow_id, from_step, new_workflow_id=new_id),
        wait,
    )


def _observe(app: Orchestrator, otlp_endpoint: str | None) -> None:
    """Logs carry workflow ids and trace ids; spans are exported when asked to (the option,
    or the standard OTEL_* variables)."""
    configure_logging()
    if otlp_endpoint is not None or tracing_requested(os.environ):
        configure_tracing(os.environ.get("OTEL_SERVICE_NAME") or app.app_name, otlp_endpoint)


def _import_target(target: str) -> Any:
    """Import ``module:attribute`` (the current directory on sys.path) and return it."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise typer.BadParameter(f"expected module:attribute (e.g. sagas.app:app), got {target!r}")
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise typer.BadParameter(f"cannot import {module_name!r}: {exc}") from exc
    return getattr(module, attribute, None)


def load_app(target: str) -> Orchestrator:
    """Import ``module:attribute`` and return the Orchestrator it names."""
    app = _import_target(target)
    if not isinstance(app, Orchestrator):
        raise typer.BadParameter(f"{target!r} is not an Orchestrator (got {type(app).__name__})")
    return app


@cli.command()
def worker(
    app_path: Annotated[str, typer.Argument(metavar="MODULE:ATTR", help="the Orchestrator")],
    executor_id: Annotated[
        str | None, typer.Option(help="this worker's id (default: host-pid-random)")
    ] = None,
    shutdown_timeout: Annotated[float, typer.Option(help="seconds to finish steps")] = 10.0,
    otlp_endpoint: OtlpEndpoint = None,
) -> None:
    """Run a worker: recover and take over workflows, dequeue, tick schedules, until SIGTERM."""
    os.environ["ORCHESTRATOR_EXECUTOR_ID"] = (
        executor_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    )
    app = load_app(app_path)
    _observe(app, otlp_endpoint)

    async def work() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        async with app:
            console.print(
                f"worker {app.executor_id} running ({app.store.dialect})", highlight=False
            )
            await stop.wait()
            console.print(f"worker {app.executor_id} shutting down", highlight=False)
            await app.shutdown(shutdown_timeout)

    _run(work)


# The sample shop (sagas/ and services/ in a checkout of this repository), found by name at
# run time: the orchestrator package never imports the sample application.
DEFAULT_UP_TARGET = "sagas.shop:stack"


def load_target(target: str) -> Orchestrator | Callable[..., Any]:
    """Import ``module:attribute``: an Orchestrator, or a stack factory (a callable)."""
    found = _import_target(target)
    if isinstance(found, Orchestrator) or (callable(found) and not isinstance(found, type)):
        return found
    raise typer.BadParameter(
        f"{target!r} is neither an Orchestrator nor a stack factory (got {type(found).__name__})"
    )


@cli.command()
def up(
    target: Annotated[
        str,
        typer.Argument(
            metavar="[MODULE:ATTR]",
            help="an Orchestrator, or a function (UpContext) -> Stack that adds webhooks, "
            "routes and child processes (default: the sample shop)",
        ),
    ] = DEFAULT_UP_TARGET,
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="0: any free port")] = 8000,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="ORCHESTRATOR_API_KEY", help="bearer key (required off 127.0.0.1)"),
    ] = None,
    otlp_endpoint: OtlpEndpoint = None,
) -> None:
    """Serve an application's HTTP API (workflows, messages, events, webhooks) and run it;
    with no argument, run the sample shop (orchestrator, inventory, payments, shipping)."""
    from orchestrator.http import check_bind, serve
    from orchestrator.http.stack import Stack, UpContext, free_port
    from orchestrator.http.supervisor import run_stack

    try:
        check_bind(host, api_key)
        loaded = load_target(target)
        if isinstance(loaded, Orchestrator):
            _observe(loaded, otlp_endpoint)
            serve(loaded, host=host, port=port or free_port(host), api_key=api_key)
            return
        context = UpContext(host=host, port=port or free_port(host))
        stack = loaded(context)
        if not isinstance(stack, Stack):
            raise typer.BadParameter(f"{target!r} returned {type(stack).__name__}, not a Stack")
        _observe(stack.orchestrator, otlp_endpoint)
        code = asyncio.run(
            run_stack(stack, context, api_key=api_key, echo=lambda line: print(line, flush=True))
        )
    except OrchestratorError as exc:
        errors.print(f"[red]error[/red] ({exc.code}): {exc.message}")
        raise typer.Exit(1) from None
    raise typer.Exit(code)


@cli.command()
def queues(
    database_url: DatabaseUrl = None,
    app_name: AppName = "orchestrator",
    schema: Schema = "orchestrator",
    as_json: AsJson = False,
    url: ServiceUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Queue depths, running counts and starts in the last minute."""
    rows: list[Any] = _ask(
        _Where(database_url, app_name, schema, url, api_key),
        lambda app: app.queue_stats(),
        lambda client: client.queue_stats(),
    )
    columns = ["queue_name", "depth", "running", "started_last_minute"]
    _print(rows, columns, as_json, "queues")


@cli.command()
def schedules(
    database_url: DatabaseUrl = None,
    app_name: AppName = "orchestrator",
    schema: Schema = "orchestrator",
    as_json: AsJson = False,
    url: ServiceUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Stored cron schedules."""
    rows: list[Any] = _ask(
        _Where(database_url, app_name, schema, url, api_key),
        lambda app: app.list_schedules(),
        lambda client: client.list_schedules(),
    )
    last_tick = "last_tick" if url else "last_tick_ms"  # the service answers a time
    columns = ["name", "workflow_name", "cron", "paused", "catch_up", last_tick]
    _print(rows, columns, as_json, "schedules")


def main() -> None:
    """Entry point of the `saga` console script."""
    cli()


if __name__ == "__main__":
    main()
