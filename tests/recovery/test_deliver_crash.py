"""SIGKILL during a storm of sends delivered in the recv's own process (the send's statement
consumes the message and writes the recv's checkpoint): whatever moment the worker dies, each
consumed message is the output of exactly one recv checkpoint and each checkpoint's message is
consumed, no message is consumed without one, and every workflow ends with what its
checkpoints recorded (random delays, seeded: rerun with DELIVER_CRASH_SEED=<seed>)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections import Counter

import psycopg
import pytest

from tests.processes import start_ready
from tests.recovery.deliver_worker import MESSAGES, WORKFLOWS

pytestmark = [pytest.mark.recovery, pytest.mark.postgres]


def spawn(database_url: str) -> subprocess.Popen[str]:
    return start_ready("tests.recovery.deliver_worker", database_url)


def test_deliveries_are_exactly_once_across_kills(postgres_url: str) -> None:
    seed = int(os.environ.get("DELIVER_CRASH_SEED", random.randrange(1_000_000)))
    print(f"DELIVER_CRASH_SEED={seed}")
    rng = random.Random(seed)
    outputs = []
    for _ in range(3):
        worker = spawn(postgres_url)
        time.sleep(rng.uniform(0.1, 1.0))  # in the middle of a round of deliveries
        worker.send_signal(signal.SIGKILL)
        outputs.append(worker.communicate(timeout=30)[0])
    worker = spawn(postgres_url)
    out, err = worker.communicate(timeout=300)
    assert worker.returncode == 0 and out.endswith("done\n"), err
    outputs.append(out)
    delivered = [
        int(
            ([0] + [line.split()[1] for line in o.splitlines() if line.startswith("delivered")])[-1]
        )
        for o in outputs
    ]
    print("delivered in the same process, per run:", delivered)
    assert sum(delivered) > 0  # the path under test ran

    with psycopg.connect(postgres_url, options="-c search_path=orchestrator") as conn:
        workflows = conn.execute("SELECT workflow_id, status, output FROM workflows").fetchall()
        steps = conn.execute(
            "SELECT workflow_id, output FROM steps WHERE kind = 'recv' AND output IS NOT NULL"
        ).fetchall()
        consumed = conn.execute(
            "SELECT destination_id, payload FROM messages WHERE consumed"
        ).fetchall()
    assert len(workflows) == WORKFLOWS
    checkpoints = Counter((w, json.loads(o)) for w, o in steps)
    taken = Counter((w, json.loads(p)) for w, p in consumed)
    assert checkpoints == taken  # each consumed message checkpointed once, and only those
    assert max(checkpoints.values()) == 1
    for workflow_id, status, output in workflows:
        received = [m for (w, m) in checkpoints if w == workflow_id]
        assert status == "SUCCESS", workflow_id
        assert len(received) == MESSAGES
        assert sorted(json.loads(output)) == sorted(received)
