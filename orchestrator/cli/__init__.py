"""`saga`: the command line (Typer). Serve and run applications (serve.py), inspect and steer
workflows (workflows.py), migrate the database and show queues and schedules (here)."""

from __future__ import annotations

from typing import Any

import typer

from orchestrator.app import Orchestrator
from orchestrator.cli import actions as _actions
from orchestrator.cli import history as _history  # noqa: F401  (registers its commands)
from orchestrator.cli.common import (
    ApiKey,
    AppName,
    AsJson,
    DatabaseUrl,
    Schema,
    ServiceUrl,
    Where,
    app_name_of,
    ask,
    console,
    database_url_of,
    print_rows,
    run,
)
from orchestrator.cli.messages import messages_cli
from orchestrator.cli.serve import up, worker
from orchestrator.cli.versions import upgrade_check, versions
from orchestrator.cli.workflows import workflows_cli

cli = typer.Typer(help="saga-orchestrator: durable workflows and sagas.", no_args_is_help=True)
cli.add_typer(workflows_cli, name="workflows")
cli.add_typer(_actions.subjects_cli, name="subjects")
cli.add_typer(messages_cli, name="messages")
cli.command()(up)
cli.command()(worker)
cli.command()(versions)
cli.command("upgrade-check")(upgrade_check)


@cli.command()
def migrate(
    database_url: DatabaseUrl = None,
    app_name: AppName = None,
    schema: Schema = "orchestrator",
) -> None:
    """Apply pending schema migrations (also done at every launch)."""

    async def work() -> list[str]:
        name = app_name_of(database_url, app_name, existing=False)
        app = Orchestrator(name, database_url_of(database_url, name), schema=schema)
        return await app.migrate()  # under the migration lock every process shares

    applied = run(work)
    console.print(f"schema up to date: {len(applied)} migration(s) applied ({', '.join(applied)})")


@cli.command()
def queues(
    database_url: DatabaseUrl = None,
    app_name: AppName = None,
    schema: Schema = "orchestrator",
    as_json: AsJson = False,
    url: ServiceUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Queue depths, running counts and starts in the last minute."""
    rows: list[Any] = ask(
        Where(database_url, app_name, schema, url, api_key),
        lambda app: app.queue_stats(),
        lambda client: client.queue_stats(),
    )
    columns = ["queue_name", "depth", "running", "started_last_minute"]
    print_rows(rows, columns, as_json, "queues")


@cli.command()
def schedules(
    database_url: DatabaseUrl = None,
    app_name: AppName = None,
    schema: Schema = "orchestrator",
    as_json: AsJson = False,
    url: ServiceUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Stored cron schedules."""
    rows: list[Any] = ask(
        Where(database_url, app_name, schema, url, api_key),
        lambda app: app.list_schedules(),
        lambda client: client.list_schedules(),
    )
    columns = ["name", "workflow_name", "cron", "paused", "catch_up", "last_tick"]
    print_rows(rows, columns, as_json, "schedules")


def main() -> None:
    """Entry point of the `saga` console script."""
    cli()
