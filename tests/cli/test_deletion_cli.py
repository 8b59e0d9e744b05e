"""`saga workflows delete` and `bulk-delete` (#20), against the database (both stores)."""

from __future__ import annotations

import json

import pytest

from orchestrator import Orchestrator, WorkflowFailedError
from tests.cli.ops_app import define
from tests.cli.test_cli import saga


async def test_delete_and_bulk_delete_from_the_cli(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_ACTOR", "fay")
    monkeypatch.delenv("REFUND_DOWN", raising=False)
    app = Orchestrator("cli-del", database_url, executor_id="cli-del-test", app_version="ops")
    order = define(app)
    where = ("--database-url", database_url, "--app-name", "cli-del")
    async with app:
        for i in range(3):
            with pytest.raises(WorkflowFailedError):
                await (await app.start(order, i, workflow_id=f"del-{i}")).result()
        await app.start(order, 9, False, workflow_id="del-running")  # sleeps an hour

    deleted = saga("workflows", "delete", "del-0", "--reason", "test data", *where)
    assert deleted.returncode == 0, deleted.stderr + deleted.stdout
    assert "deleted del-0" in deleted.stdout
    running = saga("workflows", "delete", "del-running", "--no-children", *where)
    assert running.returncode != 0
    assert "cancel it first" in running.stdout + running.stderr
    dry = saga("workflows", "bulk-delete", "--id-prefix", "del-", "--dry-run", *where)
    assert dry.returncode == 0, dry.stderr
    assert "would act on 2 workflows" in dry.stdout
    acted = saga("workflows", "bulk-delete", "--id-prefix", "del-", "--reason", "tidy", *where)
    assert acted.returncode == 0 and "2 done, 0 failed" in acted.stdout, acted.stdout
    listed = json.loads(saga("workflows", "list", "--json", *where).stdout)
    assert [w["workflow_id"] for w in listed] == ["del-running"]
    audit = json.loads(saga("workflows", "audit", "--json", *where).stdout)
    assert {(e["action"], e["actor"], e["surface"]) for e in audit} >= {
        ("delete", "fay", "cli"),
        ("bulk_delete", "fay", "cli"),
    }
