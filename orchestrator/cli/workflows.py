"""`saga workflows`: list, inspect, cancel, resume and fork workflows, in the database or
through a running service (--url)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from orchestrator import WorkflowStatus
from orchestrator.app import Orchestrator
from orchestrator.attributes import parse_attribute_pairs
from orchestrator.cli.common import (
    ApiKey,
    AppName,
    AsJson,
    DatabaseUrl,
    Schema,
    ServiceUrl,
    Where,
    ask,
    call_service,
    console,
    plain,
    print_rows,
    run,
    text_of,
)
from orchestrator.cli.serve import load_app
from orchestrator.errors import OrchestratorError

if TYPE_CHECKING:
    from orchestrator.http.client import ServiceClient

workflows_cli = typer.Typer(help="Inspect and steer workflows.", no_args_is_help=True)


@workflows_cli.command("list")
def list_workflows(
    status: Annotated[str | None, typer.Option(help="e.g. PENDING, ERROR")] = None,
    name: Annotated[str | None, typer.Option(help="workflow name")] = None,
    app_version: Annotated[
        str | None, typer.Option("--app-version", help="recorded with this application version")
    ] = None,
    stranded: Annotated[
        bool,
        typer.Option(
            "--stranded",
            help="only unfinished workflows of versions no live worker serves (nobody runs them)",
        ),
    ] = False,
    attribute: Annotated[
        list[str] | None,
        typer.Option(help="only workflows with this attribute, as name=value (repeatable)"),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    database_url: DatabaseUrl = None,
    app_name: AppName = None,
    schema: Schema = "orchestrator",
    as_json: AsJson = False,
    url: ServiceUrl = None,
    api_key: ApiKey = None,
) -> None:
    """List workflows, newest first."""
    where = Where(database_url, app_name, schema, url, api_key)
    rows: list[Any] = ask(
        where,
        lambda app: app.list_workflows(
            status=status,
            name=name,
            app_version=app_version,
            stranded=stranded,
            attributes=parse_attribute_pairs(attribute) if attribute else None,
            limit=limit,
        ),
        lambda client: client.list_workflows(
            status=status,
            name=name,
            app_version=app_version,
            stranded=stranded,
            attributes=parse_attribute_pairs(attribute) if attribute else None,
            limit=limit,
        ),
    )
    columns = ["workflow_id", "name", "status", "created_at", "error"]
    if attribute:
        columns = ["workflow_id", "name", "status", "created_at", "attributes"]
    if stranded or app_version:
        columns = ["workflow_id", "name", "status", "app_version", "executor_id", "created_at"]
    print_rows(rows, columns, as_json, "workflows", source=where.describe())


@workflows_cli.command("get")
def get_workflow(
    workflow_id: str,
    database_url: DatabaseUrl = None,
    app_name: AppName = None,
    schema: Schema = "orchestrator",
    as_json: AsJson = False,
    url: ServiceUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Show one workflow's status, input, output and error (input and output as JSON)."""
    info: dict[str, Any] = plain(
        ask(
            Where(database_url, app_name, schema, url, api_key),
            lambda app: app.retrieve(workflow_id).status(),
            lambda client: client.get_workflow(workflow_id),
        )
    )
    info.pop("links", None)  # the service's answer links to itself
    if as_json:
        console.print_json(json.dumps(info))
        return
    for key, value in info.items():
        shown = (
            json.dumps(value, ensure_ascii=False)
            if key in ("input", "output", "attributes")
            else value
        )
        console.print(f"[bold]{key:>20}[/bold]  {escape(text_of(shown))}", highlight=False)


@workflows_cli.command("steps")
def list_steps(
    workflow_id: str,
    database_url: DatabaseUrl = None,
    app_name: AppName = None,
    schema: Schema = "orchestrator",
    as_json: AsJson = False,
    url: ServiceUrl = None,
    api_key: ApiKey = None,
) -> None:
    """A workflow's recorded steps and compensations, in order."""
    rows: list[Any] = ask(
        Where(database_url, app_name, schema, url, api_key),
        lambda app: app.list_steps(workflow_id),
        lambda client: client.list_steps(workflow_id),
    )
    columns = ["step_number", "kind", "name", "status", "attempts", "compensates_step", "error"]
    print_rows(rows, columns, as_json, f"steps of {workflow_id}")


@workflows_cli.command("cancel")
def cancel_workflow(
    workflow_id: str,
    compensate: Annotated[bool, typer.Option(help="roll back completed steps")] = False,
    children: Annotated[
        bool, typer.Option(help="cancel its running child workflows too (--no-children: leave)")
    ] = True,
    reason: Annotated[str | None, typer.Option(help="why (recorded in the audit log)")] = None,
    database_url: DatabaseUrl = None,
    app_name: AppName = None,
    schema: Schema = "orchestrator",
    url: ServiceUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Cancel a workflow (it stops at its next durable call), and its running children."""
    ask(
        Where(database_url, app_name, schema, url, api_key),
        lambda app: app.cancel(
            workflow_id, compensate=compensate, children=children, reason=reason
        ),
        lambda client: client.cancel(
            workflow_id, compensate=compensate, children=children, reason=reason
        ),
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

    run(work)


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
        _handed_over(call_service(url, api_key, lambda c: c.resume(workflow_id)))
        return
    _run_here(load_app(target), lambda app: app.resume(workflow_id), wait)


@workflows_cli.command("fork")
def fork_workflow(
    workflow_id: str,
    app_path: AppPath = None,
    from_step: Annotated[int, typer.Option(min=1, help="re-execute from this step on")] = 1,
    new_id: Annotated[str | None, typer.Option(help="the new workflow's id")] = None,
    app_version: Annotated[
        str | None,
        typer.Option(
            "--app-version", help="a worker of this application version runs the fork (not here)"
        ),
    ] = None,
    wait: Wait = True,
    url: ServiceUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Start a new workflow with the same input, reusing the steps recorded before --from-step."""
    target = _runner(app_path, url)
    if url:
        _handed_over(
            call_service(
                url,
                api_key,
                lambda c: c.fork(
                    workflow_id, from_step, new_workflow_id=new_id, app_version=app_version
                ),
            )
        )
        return
    _run_here(
        load_app(target),
        lambda app: app.fork(
            workflow_id, from_step, new_workflow_id=new_id, app_version=app_version
        ),
        wait and app_version is None,
    )


@workflows_cli.command("move")
def move_workflows(
    workflow_ids: Annotated[list[str] | None, typer.Argument(help="the workflows to move")] = None,
    to_version: Annotated[
        str, typer.Option("--to-version", help="the application version to run them")
    ] = "",
    from_version: Annotated[
        str | None,
        typer.Option("--from-version", help="every unfinished workflow of this version"),
    ] = None,
    database_url: DatabaseUrl = None,
    app_name: AppName = None,
    schema: Schema = "orchestrator",
    url: ServiceUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Give unfinished workflows another application version: its live workers take them over
    from their last checkpoint. Check first that its code can replay them (saga upgrade-check).
    Workflows a live worker runs now are left alone (a rolling deploy's old workers drain)."""
    if not to_version:
        raise typer.BadParameter("give --to-version VERSION")
    if not workflow_ids and from_version is None:
        raise typer.BadParameter("give workflow ids, or --from-version VERSION")
    unfinished = ["PENDING", "COMPENSATING", "ENQUEUED"]

    async def local(app: Orchestrator) -> list[str]:
        ids = list(workflow_ids or [])
        if from_version is not None:
            infos = await app.list_workflows(
                status=[WorkflowStatus(status) for status in unfinished],
                app_version=from_version,
                limit=10_000,
            )
            ids += [info.workflow_id for info in infos]
        return await app.move_workflows(ids, to_version)

    async def remote(client: ServiceClient) -> list[str]:
        ids = list(workflow_ids or [])
        if from_version is not None:
            for status in unfinished:
                rows = await client.list_workflows(
                    status=status, app_version=from_version, limit=1000
                )
                ids += [row["workflow_id"] for row in rows]
        return await client.move_workflows(ids, to_version) if ids else []

    moved = ask(Where(database_url, app_name, schema, url, api_key), local, remote)
    console.print(f"moved {len(moved)} workflow(s) to {to_version}: {' '.join(moved)}".rstrip())
