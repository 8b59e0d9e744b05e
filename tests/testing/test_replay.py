"""Export a real run's history (Python, the CLI, the service) and replay it with
orchestrator.testing: clean against the same code, failing at the inserted step against code
that inserted one; malformed documents are refused clearly."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from orchestrator import Orchestrator, WorkflowStatus
from orchestrator.errors import InvalidArgumentError
from orchestrator.http import create_app
from orchestrator.testing import assert_replays, replay
from tests.http.conftest import start_server

ROOT = Path(__file__).resolve().parents[2]


def build(database_url: str, *, inserted: bool = False, compensation: bool = True) -> Orchestrator:
    """The checkout saga of release 1 (or of a release 2 that inserted a fraud check)."""
    app = Orchestrator("replay", database_url, app_version="v2" if inserted else "v1")

    @app.step(name="reserve")
    async def reserve(sku: str) -> str:
        return f"res-{sku}"

    if compensation:

        @reserve.compensation
        async def release(sku: str, reservation: str) -> None:
            return None

    @app.step(name="fraud_check")
    async def fraud_check(sku: str) -> bool:
        return True

    @app.step(name="charge")
    async def charge(sku: str) -> str:
        return f"ch-{sku}"

    @app.step(name="ship")
    async def ship(sku: str) -> str:
        return f"sh-{sku}"

    @app.workflow(name="checkout")
    async def checkout(sku: str, wait: bool = False) -> str:
        await reserve(sku)
        if inserted:
            await fraud_check(sku)
        paid = await charge(sku)
        if wait:
            await app.recv("go", timeout=3600)
        return f"{paid}/{await ship(sku)}"

    return app


async def run_checkout(database_url: str, workflow_id: str, *, wait: bool = False) -> None:
    app = build(database_url)
    async with app:
        handle = await app.start(app.workflows["checkout"], "sku-1", wait, workflow_id=workflow_id)
        if not wait:
            assert await handle.result(timeout=60) == "ch-sku-1/sh-sku-1"
            return
        for _ in range(600):  # until it waits on recv (charge recorded)
            if any(s.name == "charge" for s in await app.list_steps(workflow_id)):
                break
            await handle.status()
        assert (await handle.status()).status is WorkflowStatus.PENDING


def saga(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


async def test_a_finished_history_replays_clean_and_fails_at_an_inserted_step(
    database_url: str,
) -> None:
    await run_checkout(database_url, "order-1")
    history = await build(database_url).export_history("order-1")  # not launched

    assert history["format"] == "saga-orchestrator/history"
    assert history["version"] == 1
    assert history["workflow"]["status"] == "SUCCESS"
    assert history["workflow"]["name"] == "checkout"
    names = [s["name"] for s in history["steps"]]
    assert names[0] == "reserve" and "charge" in names and "ship" in names
    reserve = history["steps"][0]
    assert reserve["compensation"] is not None and reserve["compensation_input"] is not None
    assert json.loads(json.dumps(history)) == history  # JSON-able as it is

    same = build(database_url)
    verdict = await replay(history, same)
    assert verdict.compatible, verdict.reason
    assert verdict.replayed == len(history["steps"])
    assert not same.launched
    await assert_replays(json.dumps(history), same)  # a JSON text works too

    changed = build(database_url, inserted=True)
    verdict = await replay(history, changed)
    assert verdict.verdict == "needs_patch"
    assert (verdict.step, verdict.recorded, verdict.called) == (2, "charge", "fraud_check")
    with pytest.raises(AssertionError, match=r"step 2 .*'charge'.*'fraud_check'"):
        await assert_replays(history, changed)


async def test_the_cli_exports_a_waiting_workflow_that_replays(
    database_url: str, tmp_path: Path
) -> None:
    await run_checkout(database_url, "order-2", wait=True)

    printed = saga("workflows", "export", "order-2", "--database-url", database_url)
    assert printed.returncode == 0, printed.stderr
    history = json.loads(printed.stdout)
    assert history["workflow"]["status"] == "PENDING"

    saved = tmp_path / "order-2.json"
    written = saga(
        "workflows", "export", "order-2", "-o", str(saved), "--database-url", database_url
    )
    assert written.returncode == 0, written.stderr
    assert "order-2" in written.stderr and written.stdout == ""
    assert json.loads(saved.read_text())["steps"] == history["steps"]

    verdict = await assert_replays(saved, build(database_url))  # a Path: the file
    assert "goes on from step" in verdict.reason
    with pytest.raises(AssertionError, match="step 2"):
        await assert_replays(saved, build(database_url, inserted=True))

    missing = saga("workflows", "export", "no-such", "--database-url", database_url)
    assert missing.returncode == 1
    assert "workflow_not_found" in missing.stderr


async def test_a_history_mid_rollback_needs_its_compensations(
    database_url: str, tmp_path: Path
) -> None:
    await run_checkout(database_url, "order-4")
    history = await build(database_url).export_history("order-4")
    last = max(s["step_number"] for s in history["steps"])
    history["workflow"].update(status="COMPENSATING", rollback_after_step=last)

    # Replayed on another database: the rollback plan comes from the document's steps.
    elsewhere = f"sqlite:///{tmp_path}/elsewhere.db"
    assert (await replay(history, build(elsewhere))).compatible
    verdict = await replay(history, build(elsewhere, compensation=False))
    assert verdict.verdict == "needs_patch"
    assert (verdict.step, verdict.recorded) == (1, "reserve.compensation")


@pytest.mark.sqlite
def test_the_cli_exports_through_the_service_with_url(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path}/orch.db"
    asyncio.run(run_checkout(database_url, "order-3"))
    expected = asyncio.run(build(database_url).export_history("order-3"))
    server = start_server(create_app(build(database_url)))
    try:
        exported = saga("workflows", "export", "order-3", "--url", server.base_url)
        missing = saga("workflows", "export", "no-such", "--url", server.base_url)
    finally:
        server.stop()
    assert exported.returncode == 0, exported.stderr
    history = json.loads(exported.stdout)
    assert history.pop("exported_at") and expected.pop("exported_at")
    assert history == expected
    assert missing.returncode == 1
    assert "workflow_not_found" in missing.stderr and "the service at" in missing.stderr


def _history(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "format": "saga-orchestrator/history",
        "version": 1,
        "exported_at": "2025-01-01T00:00:00.000Z",
        "workflow": {
            "workflow_id": "w",
            "name": "checkout",
            "status": "SUCCESS",
            "input": "{}",
            "output": None,
            "error": None,
            "executor_id": None,
            "app_version": "v1",
            "queue_name": None,
            "priority": 0,
            "dedup_id": None,
            "partition_key": None,
            "parent_workflow_id": None,
            "recovery_attempts": 0,
            "max_recovery_attempts": None,
            "timeout_ms": None,
            "deadline_ms": None,
            "not_before_ms": None,
            "trace_context": None,
            "created_at": 0,
            "updated_at": 0,
            "started_at": None,
            "finished_at": None,
        },
        "steps": [],
    }
    document.update(changes)
    return document


@pytest.mark.sqlite
@pytest.mark.parametrize(
    ("history", "message"),
    [
        ("not json", "not a JSON history"),
        ("[1, 2]", "JSON object"),
        ({"steps": []}, "not a workflow history"),
        (_history(version=2), "version 2 is not supported"),
        (_history(workflow="x"), "'workflow' must be an object"),
        (_history(workflow={"workflow_id": "w"}), "'workflow.name' is missing"),
        (_history(workflow={**_history()["workflow"], "status": "DONE"}), "workflow.status"),
        (_history(workflow={**_history()["workflow"], "priority": "0"}), "workflow.priority"),
        (_history(steps={}), "'steps' must be a list"),
        (_history(steps=[{"workflow_id": "w", "step_number": 1}]), "steps\\[0\\].name"),
        (
            _history(
                steps=[{"workflow_id": "other", "step_number": 1, "name": "a", "kind": "step"}]
            ),
            "steps\\[0\\].workflow_id",
        ),
        (
            _history(steps=[{"workflow_id": "w", "step_number": 1, "name": "a", "kind": "nope"}]),
            "steps\\[0\\].kind",
        ),
        (Path("/nonexistent/history.json"), "cannot read the history file"),
        (42, "not int"),
    ],
)
async def test_malformed_documents_are_refused(history: Any, message: str, tmp_path: Path) -> None:
    app = build(f"sqlite:///{tmp_path}/orch.db")
    with pytest.raises(InvalidArgumentError, match=message):
        await replay(history, app)


@pytest.mark.sqlite
async def test_a_history_of_an_unknown_workflow(tmp_path: Path) -> None:
    app = build(f"sqlite:///{tmp_path}/orch.db")
    verdict = await replay(_history(workflow={**_history()["workflow"], "name": "gone"}), app)
    assert verdict.verdict == "unknown_workflow"
    with pytest.raises(AssertionError, match="registers no workflow named 'gone'"):
        await assert_replays(_history(workflow={**_history()["workflow"], "name": "gone"}), app)
