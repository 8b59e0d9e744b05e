"""Saga workers killed with SIGKILL mid-forward, between and inside compensations; a new process
recovers the rollback. The ledger proves each step and each compensation applied exactly once."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from orchestrator import Orchestrator, StepInfo, WorkflowInfo, WorkflowStatus
from tests.processes import run_module
from tests.recovery.ledger import Ledger
from tests.recovery.saga_worker import FAIL_AT, FORWARD_STEPS, check_saga

WORKFLOW_ID = "saga-crash-wf"

pytestmark = pytest.mark.recovery

# case -> (crash point, the ledger key executed twice: its effect applied before the kill)
CASES = {
    "forward-after-effect": ("after-effect-step-2", f"fwd:{WORKFLOW_ID}:2"),
    "between-compensations": ("before-undo-2", None),  # undo of 3 checkpointed, undo of 2 not
    "compensation-after-effect": ("after-effect-undo-1", f"comp:{WORKFLOW_ID}:7@{WORKFLOW_ID}:1"),
}


def run_worker(
    database_url: str, ledger: Path, crash: str | None
) -> subprocess.CompletedProcess[str]:
    crashing = ["--crash", crash] if crash else []
    return run_module(
        "tests.recovery.saga_worker", database_url, str(ledger), WORKFLOW_ID, *crashing, timeout=90
    )


async def stored(database_url: str) -> tuple[WorkflowInfo, list[StepInfo]]:
    app = Orchestrator("saga-crash", database_url, executor_id="inspector", app_version="other")
    async with app:
        return await app.retrieve(WORKFLOW_ID).status(), await app.list_steps(WORKFLOW_ID)


@pytest.mark.parametrize("repeat", range(2))
@pytest.mark.parametrize("case", list(CASES))
async def test_killed_saga_resumes_its_rollback_and_compensates_each_step_once(
    database_url: str, tmp_path: Path, case: str, repeat: int
) -> None:
    crash, twice = CASES[case]
    ledger_path = tmp_path / "ledger.db"
    ledger = Ledger(ledger_path)

    first = run_worker(database_url, ledger_path, crash)
    assert first.returncode == -signal.SIGKILL, (first.returncode, first.stderr)
    info, _ = await stored(database_url)
    crashed_in = (
        WorkflowStatus.PENDING if case.startswith("forward") else WorkflowStatus.COMPENSATING
    )
    assert info.status is crashed_in

    second = run_worker(database_url, ledger_path, None)
    assert second.returncode == 0, second.stderr
    assert "status COMPENSATED" in second.stdout, second.stdout

    info, steps = await stored(database_url)
    assert info.status is WorkflowStatus.COMPENSATED
    assert info.recovery_attempts == 1
    snapshot = ledger.snapshot()
    check_saga(
        snapshot,
        steps,
        WORKFLOW_ID,
        forward_steps=FORWARD_STEPS,
        compensable=range(1, FORWARD_STEPS + 1),
        fail_at=FAIL_AT,
        crashes=1,
    )
    reexecuted = {key: n for key, n in snapshot.attempts.items() if n > 1}
    assert reexecuted == ({twice: 2} if twice else {}), snapshot.attempts
