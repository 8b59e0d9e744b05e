"""`saga versions` and `saga upgrade-check`: the application versions that have run, and whether
new code can carry on the workflows in flight (docs/upgrading.md)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from orchestrator import ReplayVerdict
from orchestrator.cli.common import (
    ApiKey,
    AppName,
    AsJson,
    DatabaseUrl,
    Schema,
    ServiceUrl,
    Where,
    ask,
    console,
    print_rows,
    run,
)
from orchestrator.cli.serve import load_app


def versions(
    database_url: DatabaseUrl = None,
    app_name: AppName = None,
    schema: Schema = "orchestrator",
    as_json: AsJson = False,
    url: ServiceUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Application versions that have run: first and last seen, live workers, unfinished and
    stranded workflows (unfinished while no live worker serves the version)."""
    rows: list[Any] = ask(
        Where(database_url, app_name, schema, url, api_key),
        lambda app: app.list_versions(),
        lambda client: client.list_versions(),
    )
    columns = [
        "app_version",
        "first_seen",
        "last_seen",
        "live_workers",
        "unfinished",
        "stranded",
        "total",
    ]
    print_rows(rows, columns, as_json, "versions")


def upgrade_check(
    app_path: Annotated[
        str, typer.Argument(metavar="MODULE:ATTR", help="the Orchestrator of the new code")
    ],
    as_json: AsJson = False,
    adopt: Annotated[
        bool,
        typer.Option(
            "--adopt",
            help="move the compatible workflows of other versions to this code's version, so "
            "its workers recover them",
        ),
    ] = False,
    workflow_ids: Annotated[
        list[str] | None,
        typer.Option("--workflow-id", help="check only these workflows (repeatable)"),
    ] = None,
) -> None:
    """Replay every unfinished workflow's recorded history against the code of MODULE:ATTR,
    executing nothing: compatible, needs_patch (where it diverges) or unknown_workflow. Exit
    code 0 when every one is compatible, 1 otherwise. The database is the app's own
    (its database_url, or ORCHESTRATOR_DATABASE_URL / DATABASE_URL)."""
    app = load_app(app_path)
    verdicts: list[ReplayVerdict] = run(
        lambda: app.upgrade_check(adopt=adopt, workflow_ids=workflow_ids or None)
    )
    if as_json:
        print(json.dumps([v.as_dict() for v in verdicts], indent=2))
    else:
        _show(verdicts, app.app_version, adopt)
    if not all(v.compatible for v in verdicts):
        raise typer.Exit(1)


def _show(verdicts: list[ReplayVerdict], version: str, adopt: bool) -> None:
    table = Table(title=f"upgrade check against {version}")
    for column in ("workflow_id", "workflow_name", "app_version", "status", "verdict", "step"):
        table.add_column(column, overflow="fold")
    for v in verdicts:
        colour = {"compatible": "green", "needs_patch": "red"}.get(v.verdict, "yellow")
        table.add_row(
            v.workflow_id,
            v.workflow_name,
            v.app_version or "",
            str(v.status),
            f"[{colour}]{v.verdict}[/{colour}]" + (" (adopted)" if v.adopted else ""),
            "" if v.step is None else str(v.step),
        )
    console.print(table)
    for v in verdicts:  # one unwrapped line each: the reason names the step and the calls
        if not v.compatible:
            console.print(f"{v.workflow_id}: {v.verdict}: {v.reason}", soft_wrap=True)
    counts: dict[str, int] = {}
    for v in verdicts:
        counts[v.verdict] = counts.get(v.verdict, 0) + 1
    summary = ", ".join(f"{n} {verdict}" for verdict, n in sorted(counts.items())) or "none"
    console.print(f"{len(verdicts)} unfinished workflow(s): {summary}", soft_wrap=True)
    if adopt:
        adopted = sum(v.adopted for v in verdicts)
        console.print(
            f"adopted {adopted} workflow(s): this version's workers take them over",
            soft_wrap=True,
        )
    if any(not v.compatible for v in verdicts):
        console.print(
            "wrap the changed calls in `if await app.patched(name):` (docs/upgrading.md), or "
            "keep workers of their version until they finish",
            soft_wrap=True,
        )
