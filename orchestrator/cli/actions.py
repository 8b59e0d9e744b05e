"""`saga workflows` operator actions (#18): skip or retry a compensation, bulk actions by
filter with a dry run, the audit log. The same actions as Python and HTTP, audited as the CLI
user (``ORCHESTRATOR_ACTOR`` names someone else) on the ``cli`` surface."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer

from orchestrator import BulkResult, Orchestrator, WorkflowFilter
from orchestrator.audit import acting_as
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
    cli_actor,
    console,
    plain,
    print_rows,
    run,
)
from orchestrator.cli.serve import load_app
from orchestrator.cli.workflows import (
    AppPath,
    Wait,
    _handed_over,
    _run_here,
    _runner,
    workflows_cli,
)

T = TypeVar("T")

Reason = Annotated[str | None, typer.Option("--reason", help="why (recorded in the audit log)")]


@workflows_cli.command("skip-compensation")
def skip_compensation(
    workflow_id: str,
    step: Annotated[int, typer.Option("--step", min=1, help="the forward step not to undo")],
    reason: Annotated[str, typer.Option("--reason", help="why (required; audited)")],
    app_path: AppPath = None,
    wait: Wait = True,
    url: ServiceUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Give up undoing one step of a COMPENSATION_FAILED saga and finish its rollback (the
    rest of the rollback runs here with --app, or in the service with --url)."""
    target = _runner(app_path, url)
    if url:
        answer = call_service(
            url, api_key, lambda c: c.skip_compensation(workflow_id, step=step, reason=reason)
        )
        _handed_over(answer)
        return
    _run_here(
        load_app(target),
        lambda app: _as_cli(app.skip_compensation(workflow_id, step=step, reason=reason)),
        wait,
    )


@workflows_cli.command("retry-compensation")
def retry_compensation(
    workflow_id: str,
    reason: Reason = None,
    app_path: AppPath = None,
    wait: Wait = True,
    url: ServiceUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Retry the failed compensation of a COMPENSATION_FAILED saga and finish its rollback
    (here with --app, or in the service with --url)."""
    target = _runner(app_path, url)
    if url:
        answer = call_service(
            url, api_key, lambda c: c.retry_compensation(workflow_id, reason=reason)
        )
        _handed_over(answer)
        return
    _run_here(
        load_app(target),
        lambda app: _as_cli(app.retry_compensation(workflow_id, reason=reason)),
        wait,
    )


async def _as_cli(call: Awaitable[T]) -> T:
    with acting_as(cli_actor()):
        return await call


def _bulk(
    action: str,
    *,
    status: list[str] | None,
    name: str | None,
    queue: str | None,
    app_version: str | None,
    id_prefix: str | None,
    parent: str | None,
    created_after: dt.datetime | None,
    created_before: dt.datetime | None,
    dry_run: bool,
    compensate: bool,
    reason: str | None,
    where: Where,
    as_json: bool,
    app_path: str | None,
) -> None:
    after = _utc(created_after)
    before = _utc(created_before)
    filters = WorkflowFilter(
        status=status or None,
        name=name,
        queue=queue,
        app_version=app_version,
        created_after=after,
        created_before=before,
        id_prefix=id_prefix,
        parent_workflow_id=parent,
    )
    method = {"cancel": "bulk_cancel", "resume": "bulk_resume", "delete": "bulk_delete"}.get(
        action, "bulk_retry_compensation"
    )
    extra: dict[str, Any] = {"compensate": compensate} if action == "cancel" else {}
    remote_filter = {
        "status": status or None,
        "name": name,
        "queue": queue,
        "app_version": app_version,
        "id_prefix": id_prefix,
        "parent_workflow_id": parent,
        "created_after": None if after is None else after.isoformat(),
        "created_before": None if before is None else before.isoformat(),
    }

    def local(app: Orchestrator) -> Awaitable[BulkResult]:
        call: Awaitable[BulkResult] = getattr(app, method)(
            filters, dry_run=dry_run, reason=reason, **extra
        )
        return call

    # resumed workflows run: the code is needed (cancel and delete only write)
    runs_code = action not in ("cancel", "delete") and not dry_run
    if runs_code and where.url is None:
        if app_path is None:
            raise typer.BadParameter(
                f"bulk-{action.replace('_', '-')} runs workflows: give --app MODULE:ATTR (they "
                "run here, and workers take over what is left at exit) or --url (the service "
                "runs them); --dry-run needs neither"
            )
        result = plain(_bulk_here(load_app(app_path), local))
    else:
        result = plain(
            ask(
                where,
                local,
                lambda client: client.bulk(
                    action, remote_filter, dry_run=dry_run, compensate=compensate, reason=reason
                ),
            )
        )
    if as_json:
        console.print_json(data=result)
        return
    verb = action.replace("_", " ")
    if result["dry_run"]:
        console.print(f"dry run: {verb} would act on {result['matched']} workflows")
        for workflow_id in result["workflow_ids"]:
            console.print(f"  {workflow_id}")
        if result["matched"] > len(result["workflow_ids"]):
            console.print(f"  … and {result['matched'] - len(result['workflow_ids'])} more")
        return
    console.print(f"{verb}: {len(result['done'])} done, {len(result['failed'])} failed")
    for failure in result["failed"]:
        console.print(f"  {failure['workflow_id']}: {failure['error']}: {failure['message']}")
    if result["failed"]:
        raise typer.Exit(1)


def _bulk_here(
    app: Orchestrator, act: Callable[[Orchestrator], Awaitable[BulkResult]]
) -> BulkResult:
    """Launch ``app`` here, act, then shut down gracefully: what runs finishes its step and
    is checkpointed, the lease is released and workers take the rest over."""

    async def work() -> BulkResult:
        async with app:
            with acting_as(cli_actor()):
                return await act(app)

    return run(work)


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)


def _bulk_command(action: str, summary: str) -> None:
    def command(
        status: Annotated[
            list[str] | None, typer.Option("--status", help="repeatable; narrowed to the action's")
        ] = None,
        name: Annotated[str | None, typer.Option(help="workflow name")] = None,
        queue: Annotated[str | None, typer.Option(help="queue name")] = None,
        app_version: Annotated[str | None, typer.Option("--app-version")] = None,
        id_prefix: Annotated[str | None, typer.Option("--id-prefix")] = None,
        parent: Annotated[str | None, typer.Option("--parent", help="parent workflow id")] = None,
        created_after: Annotated[dt.datetime | None, typer.Option("--created-after")] = None,
        created_before: Annotated[dt.datetime | None, typer.Option("--created-before")] = None,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="only count what it would act on")
        ] = False,
        compensate: Annotated[
            bool, typer.Option("--compensate", help="cancel: roll sagas back")
        ] = False,
        reason: Reason = None,
        app_path: AppPath = None,
        database_url: DatabaseUrl = None,
        app_name: AppName = None,
        schema: Schema = "orchestrator",
        as_json: AsJson = False,
        url: ServiceUrl = None,
        api_key: ApiKey = None,
    ) -> None:
        if compensate and action != "cancel":
            raise typer.BadParameter("--compensate is for bulk-cancel only")
        _bulk(
            action,
            status=status,
            name=name,
            queue=queue,
            app_version=app_version,
            id_prefix=id_prefix,
            parent=parent,
            created_after=created_after,
            created_before=created_before,
            dry_run=dry_run,
            compensate=compensate,
            reason=reason,
            where=Where(database_url, app_name, schema, url, api_key),
            as_json=as_json,
            app_path=app_path,
        )

    command.__doc__ = summary
    workflows_cli.command(f"bulk-{action.replace('_', '-')}")(command)


_bulk_command("cancel", "Cancel every PENDING or ENQUEUED workflow the filter matches.")
_bulk_command("resume", "Resume every CANCELLED, ERROR or MAX_RECOVERY_ATTEMPTS_EXCEEDED match.")
_bulk_command(
    "retry_compensation", "Retry the compensation of every COMPENSATION_FAILED saga matched."
)
_bulk_command("delete", "Delete every finished workflow the filter matches, with its children.")


@workflows_cli.command("delete")
def delete_workflow(
    workflow_id: str,
    children: Annotated[
        bool, typer.Option(help="delete its child workflows too (--no-children: keep them)")
    ] = True,
    reason: Reason = None,
    database_url: DatabaseUrl = None,
    app_name: AppName = None,
    schema: Schema = "orchestrator",
    url: ServiceUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Delete a finished workflow with its steps, messages, events and streams (and its
    children's); a running one must be cancelled first. Its id can be used again."""

    async def local(app: Orchestrator) -> int:
        return len(await app.delete_workflow(workflow_id, children=children, reason=reason))

    async def remote(client: Any) -> int:
        await client.delete_workflow(workflow_id, children=children, reason=reason)
        return 0

    deleted = ask(Where(database_url, app_name, schema, url, api_key), local, remote)
    extra = f" and {deleted - 1} child workflows" if deleted > 1 else ""
    console.print(f"deleted {workflow_id}{extra}")


@workflows_cli.command("audit")
def audit(
    workflow_id: Annotated[str | None, typer.Argument(help="one workflow's actions")] = None,
    action: Annotated[str | None, typer.Option(help="e.g. cancel, skip_compensation")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    database_url: DatabaseUrl = None,
    app_name: AppName = None,
    schema: Schema = "orchestrator",
    as_json: AsJson = False,
    url: ServiceUrl = None,
    api_key: ApiKey = None,
) -> None:
    """The operator audit log, newest first: who did what, when, from where, and why."""

    async def local(app: Any) -> list[Any]:
        entries, _ = await app.list_audit(workflow_id=workflow_id, action=action, limit=limit)
        return list(entries)

    rows: list[Any] = ask(
        Where(database_url, app_name, schema, url, api_key),
        local,
        lambda client: client.list_audit(workflow_id=workflow_id, action=action, limit=limit),
    )
    columns = ["at", "actor", "surface", "action", "workflow_id", "reason"]
    print_rows(rows, columns, as_json, "audit")


subjects_cli = typer.Typer(help="Subjects' data keys (docs/data.md).", no_args_is_help=True)


@subjects_cli.command("erase")
def erase_subject(
    subject: str,
    reason: Annotated[str, typer.Option("--reason", help="why (required; audited)")],
    yes: Annotated[bool, typer.Option("--yes", help="do not ask: this cannot be undone")] = False,
    database_url: DatabaseUrl = None,
    app_name: AppName = None,
    schema: Schema = "orchestrator",
    url: ServiceUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Crypto-shred SUBJECT: delete its data key, so its payloads can never be read again."""
    if not yes:
        typer.confirm(f"Erase the data key of {subject!r}? This cannot be undone", abort=True)
    erased = ask(
        Where(database_url, app_name, schema, url, api_key),
        lambda app: app.erase_subject(subject, reason=reason),
        lambda client: client.erase_subject(subject, reason=reason),
    )
    console.print(f"erased the data key of {subject}" if erased else f"{subject} had no data key")


@subjects_cli.command("rewrap")
def rewrap_data_keys(
    app_path: Annotated[
        str,
        typer.Option(
            "--app",
            metavar="MODULE:ATTR",
            help="the Orchestrator whose SubjectCodec keyring holds the old and new master keys",
        ),
    ],
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, max=10_000, help="data keys per transaction")
    ] = 500,
    reason: Annotated[str | None, typer.Option("--reason", help="why (audited)")] = None,
) -> None:
    """After a master-key rotation: wrap every subject's data key under the keyring's current
    master key (safe to run again, or from several processes; see docs/data.md)."""
    app = load_app(app_path)

    async def work() -> int:
        async with app:
            try:
                return await _as_cli(app.rewrap_data_keys(batch_size=batch_size, reason=reason))
            finally:
                await app.shutdown(0)  # whatever it recovered at launch is left to the workers

    rewrapped = run(work)
    console.print(f"rewrapped {rewrapped} data key(s) under the current master key")
