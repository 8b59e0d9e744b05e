"""SIGKILL around recv: a message is consumed exactly once, atomically with its checkpoint,
whatever moment the worker dies (random delays, seeded: rerun with RECV_CRASH_SEED=<seed>)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from orchestrator import Orchestrator, StepKind, WorkflowStatus
from tests.processes import start_ready
from tests.recovery.ledger import Ledger

WORKFLOW_ID = "consumer-1"
pytestmark = pytest.mark.recovery


def spawn(database_url: str, ledger: Path) -> subprocess.Popen[str]:
    return start_ready("tests.recovery.recv_worker", database_url, str(ledger), WORKFLOW_ID)


@pytest.mark.parametrize("repeat", range(2))
async def test_messages_are_consumed_exactly_once_across_kills(
    database_url: str, tmp_path: Path, repeat: int
) -> None:
    seed = int(os.environ.get("RECV_CRASH_SEED", random.randrange(1_000_000)))
    print(f"RECV_CRASH_SEED={seed}")
    rng = random.Random(seed)
    ledger_path = tmp_path / "ledger.db"
    ledger = Ledger(ledger_path)
    sender = Orchestrator("recv", database_url, executor_id="sender", app_version="other")
    messages = [f"m{i}" for i in range(1, 6)]
    crashes = 0
    async with sender:
        worker = spawn(database_url, ledger_path)
        for index, message in enumerate(messages):
            await sender.send(WORKFLOW_ID, message, topic="m", idempotency_key=message)
            if index in (1, 3):  # kill it somewhere around consuming this message
                time.sleep(rng.uniform(0, 0.05))
                worker.send_signal(signal.SIGKILL)
                worker.wait(timeout=30)
                crashes += 1
                worker = spawn(database_url, ledger_path)
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        assert f"result {messages}" in out

        snapshot = ledger.snapshot()
        snapshot.check_balanced({f"got:{m}" for m in messages}, crashes=crashes)
        info = await sender.retrieve(WORKFLOW_ID).status()
        assert info.status is WorkflowStatus.SUCCESS and info.output == messages
        recvs = [s for s in await sender.list_steps(WORKFLOW_ID) if s.kind is StepKind.RECV]
        assert [s.output for s in recvs] == messages  # each consumed once, in order
