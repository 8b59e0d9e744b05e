"""`saga workflows`: list, inspect, cancel, resume and fork workflows, in the database or
through a running service (--url)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import typer

from orchestrator.app import Orchestrator
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
)
from orchestrator.cli.serve import load_app
from orchestrator.errors import OrchestratorError

workflows_cli = typer.Typer(help="Inspect and steer workflows.", no_args_is_help=True)


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
    rows: list[Any] = ask(
        Where(database_url, app_name, schema, url, api_key),
        lambda app: app.list_workflows(status=status, name=name, limit=limit),
        lambda client: client.list_workflows(status=status, name=name, limit=limit),
    )
    columns = ["workflow_id", "name", "status", "created_at", "error"]
    print_rows(rows, columns, as_json, "workflows")


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
    database_url: DatabaseUrl = None,
    app_name: AppName = "orchestrator",
    schema: Schema = "orchestrator",
    url: ServiceUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Cancel a workflow (it stops at its next durable call)."""
    ask(
        Where(database_url, app_name, schema, url, api_key),
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
    wait: Wait = True,
    url: ServiceUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Start a new workflow with the same input, reusing the steps recorded before --from-step."""
    target = _runner(app_path, url)
    if url:
        _handed_over(
            call_service(
                url, api_key, lambda c: c.fork(workflow_id, from_step, new_workflow_id=new_id)
            )
        )
        return
    _run_here(
        load_app(target),
        lambda app: app.fork(workflow_id, from_step, new_workflow_id=new_id),
        wait,
    )
