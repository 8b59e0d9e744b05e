"""SIGKILL in the middle of group-committed batches: no waiter resumes before its commit.

If a step's waiter were released before its checkpoint committed, the workflow's next step
would run, and after the crash the unrecorded step would run again although its successor had
already applied its effect. So: after recovery, a step may have run twice only if it was the
last step of its workflow to apply an effect before the kill.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator import Orchestrator, WorkflowStatus
from tests.recovery.ledger import Ledger

ROOT = Path(__file__).resolve().parents[2]
COUNT = 300
pytestmark = [pytest.mark.recovery, pytest.mark.postgres]


def spawn(database_url: str, ledger: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.recovery.batch_worker",
            database_url,
            str(ledger),
            str(COUNT),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.mark.parametrize("repeat", range(2))
async def test_no_step_resumes_before_its_batch_commits(
    postgres_url: str, tmp_path: Path, repeat: int
) -> None:
    seed = int(os.environ.get("BATCH_CRASH_SEED", random.randrange(1_000_000)))
    print(f"BATCH_CRASH_SEED={seed}")
    ledger_path = tmp_path / "ledger.db"
    ledger = Ledger(ledger_path)
    first = spawn(postgres_url, ledger_path)
    deadline = time.monotonic() + 60
    target = random.Random(seed).randrange(COUNT // 2, COUNT * 2)
    while len(ledger.snapshot().applied) < target and time.monotonic() < deadline:
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    before = ledger.snapshot()

    second = spawn(postgres_url, ledger_path)
    _, err = second.communicate(timeout=180)
    assert second.returncode == 0, err
    after = ledger.snapshot()

    expected = {f"b{i}:{n}" for i in range(COUNT) for n in (1, 2, 3)}
    assert after.applied == expected
    for workflow in range(COUNT):
        # (the kill may fall between the ledger's attempt and applied rows: count attempts)
        ran_before = [n for n in (1, 2, 3) if before.attempts[f"b{workflow}:{n}"]]
        for n in (1, 2, 3):
            key = f"b{workflow}:{n}"
            if after.attempts[key] > 1:  # re-executed: only the last step that ran pre-crash
                assert ran_before and n == max(ran_before), (key, ran_before)
                assert after.attempts[key] == 2

    app = Orchestrator("batch", postgres_url, executor_id="inspector", app_version="x")
    async with app:
        done = await app.list_workflows(status=WorkflowStatus.SUCCESS, limit=COUNT + 1)
        assert len(done) == COUNT
