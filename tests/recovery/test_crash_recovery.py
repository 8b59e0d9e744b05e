"""Real worker processes killed with SIGKILL at chosen points; a new process recovers the
workflow. The ledger proves every step is recorded once and re-executed only where it must."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator import Orchestrator, StepInfo, StepKind, WorkflowInfo, WorkflowStatus
from tests.recovery.ledger import Ledger

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW_ID = "crash-wf"
KEYS = {f"{WORKFLOW_ID}:{n}" for n in (1, 2, 4, 5, 6)}  # step 3 is the durable sleep

pytestmark = pytest.mark.recovery


def spawn(
    database_url: str, ledger: Path, crash: str | None = None, sleep: float = 0.2
) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "tests.recovery.crash_worker", database_url, str(ledger)]
    command.append(WORKFLOW_ID)
    if crash:
        command += ["--crash", crash]
    return subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "CRASH_SLEEP_SECONDS": str(sleep)},
    )


def wait_until(predicate: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


async def stored(database_url: str) -> tuple[WorkflowInfo, list[StepInfo]]:
    app = Orchestrator("crash", database_url, executor_id="inspector", app_version="other")
    async with app:
        return await app.retrieve(WORKFLOW_ID).status(), await app.list_steps(WORKFLOW_ID)


@pytest.mark.parametrize("repeat", range(3))
@pytest.mark.parametrize(
    "case",
    ["between-steps", "after-effect-before-checkpoint", "after-last-step", "during-sleep"],
)
async def test_killed_worker_is_recovered_with_each_effect_recorded_once(
    database_url: str, tmp_path: Path, case: str, repeat: int
) -> None:
    ledger_path = tmp_path / "ledger.db"
    ledger = Ledger(ledger_path)
    crash = {
        "between-steps": "before-step-4",
        "after-effect-before-checkpoint": "after-effect-3",
        "after-last-step": "after-last-step",
    }
    sleep = 4.0 if case == "during-sleep" else 0.2
    first = spawn(database_url, ledger_path, crash.get(case), sleep)
    if case == "during-sleep":
        wait_until(lambda: f"{WORKFLOW_ID}:2" in ledger.snapshot().applied)
        time.sleep(1.0)  # one second into the 4 s durable sleep
        first.send_signal(signal.SIGKILL)
    first.wait(timeout=60)
    assert first.returncode == -signal.SIGKILL, first.stderr.read() if first.stderr else ""

    # The recovering code would sleep 60 s: a replay that slept again in full, instead of
    # what is left of the recorded wake-up, could not finish within the bound below.
    second = spawn(database_url, ledger_path, sleep=60.0 if case == "during-sleep" else sleep)
    out, err = second.communicate(timeout=90)
    assert second.returncode == 0, err
    assert "result" in out

    snapshot = ledger.snapshot()
    snapshot.check_balanced(KEYS, crashes=1)
    reexecuted = {key for key, count in snapshot.attempts.items() if count > 1}
    if case == "after-effect-before-checkpoint":
        assert reexecuted == {f"{WORKFLOW_ID}:4"}  # effect(3) is step 4: applied twice, once
        assert snapshot.attempts[f"{WORKFLOW_ID}:4"] == 2
    elif case == "after-last-step":
        # The last step's record goes with the final status (docs/concepts.md): killed before
        # that commit, the step runs again after recovery, its effect still applied once.
        assert reexecuted == {f"{WORKFLOW_ID}:6"}
        assert snapshot.attempts[f"{WORKFLOW_ID}:6"] == 2
    else:
        assert reexecuted == set()

    info, steps = await stored(database_url)
    assert info.status is WorkflowStatus.SUCCESS
    assert [(s.step_number, s.kind) for s in steps] == [
        (1, StepKind.STEP),
        (2, StepKind.STEP),
        (3, StepKind.SLEEP),
        (4, StepKind.STEP),
        (5, StepKind.STEP),
        (6, StepKind.STEP),
    ]
    assert info.recovery_attempts == 1
    if case == "during-sleep":
        # The recovered worker slept only what was left: step 4 began no earlier than the
        # recorded wake time (the 4 s of the first run), and long before the recovering code's
        # own 60 s sleep could have ended (its start-up, slow on a loaded machine, is seconds).
        wake_at_ms = steps[2].output
        assert steps[3].started_at is not None
        started_ms = steps[3].started_at.timestamp() * 1000
        assert wake_at_ms - 50 <= started_ms < wake_at_ms + 30_000, started_ms - wake_at_ms
