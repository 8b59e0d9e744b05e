"""`saga workflows export ID`: a workflow's history as JSON (#19), from the database or a
running service (--url), for a test to replay against new code
(``orchestrator.testing.assert_replays``; docs/testing.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from orchestrator.cli.common import (
    ApiKey,
    AppName,
    DatabaseUrl,
    Schema,
    ServiceUrl,
    Where,
    ask,
    errors,
)
from orchestrator.cli.workflows import workflows_cli

Output = Annotated[
    Path | None,
    typer.Option(
        "--output", "-o", dir_okay=False, help="write the JSON to this file (default: stdout)"
    ),
]


@workflows_cli.command("export")
def export_history(
    workflow_id: str,
    output: Output = None,
    database_url: DatabaseUrl = None,
    app_name: AppName = None,
    schema: Schema = "orchestrator",
    url: ServiceUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Write a workflow's history (its record and every step, as stored) as JSON: commit it
    and replay it in a test with orchestrator.testing.assert_replays. The values are the
    application's data, unredacted."""
    document: dict[str, Any] = ask(
        Where(database_url, app_name, schema, url, api_key),
        lambda app: app.export_history(workflow_id),
        lambda client: client.export_history(workflow_id),
    )
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        sys.stdout.write(text)
        return
    output.write_text(text, encoding="utf-8")
    steps = len(document.get("steps", []))
    errors.print(  # on stderr: stdout stays for the document when there is one
        f"wrote the history of {workflow_id} ({steps} steps) to {output}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
