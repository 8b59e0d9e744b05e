"""SIGKILL during a storm of sends delivered in the recv's own process (the message handed to
the parked recv, its checkpoint left to the recipient's next write: the next recv's statement
stores it consumed with the checkpoint, the final status records the last one's with it):
whatever moment the worker dies, every send that returned is received exactly once, each
consumed message is the output of exactly one recv checkpoint, a checkpoint without a stored
message is only ever a workflow's last recv, no received message still waits in a mailbox,
and every workflow ends with what its checkpoints recorded (random delays, seeded: rerun with
DELIVER_CRASH_SEED=<seed>)."""

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


def line_counts(line: str) -> tuple[int, int]:
    _, next_write, final_status = line.split()
    return int(next_write), int(final_status)


def spawn(database_url: str, workflows: int, messages: int) -> subprocess.Popen[str]:
    return start_ready("tests.recovery.deliver_worker", database_url, str(workflows), str(messages))


@pytest.mark.parametrize(
    ("workflows", "messages", "kill_within", "after_first_send"),
    [
        (WORKFLOWS, MESSAGES, 1.0, False),  # mostly each next recv's statement
        # Each workflow's only recv, recorded with its final status; killed once the storm of
        # those writes has begun (a send returned), whatever the machine's speed.
        (1500, 1, 0.25, True),  # (the storm lasts about 0.3-1 s)
    ],
    ids=["next-write", "final-status"],
)
def test_deliveries_are_exactly_once_across_kills(
    postgres_url: str, workflows: int, messages: int, kill_within: float, after_first_send: bool
) -> None:
    seed = int(os.environ.get("DELIVER_CRASH_SEED", random.randrange(1_000_000)))
    print(f"DELIVER_CRASH_SEED={seed}")
    rng = random.Random(seed)
    outputs = []
    for _ in range(3):
        worker = spawn(postgres_url, workflows, messages)
        head = ""
        if after_first_send:
            assert worker.stdout is not None
            while line := worker.stdout.readline():  # until a send returned (or it ended)
                head += line
                if line.startswith(("acked ", "done")):
                    break
        # in the middle of a round of deliveries
        time.sleep(rng.uniform(0.0 if after_first_send else 0.05, kill_within))
        worker.send_signal(signal.SIGKILL)
        killed = head + worker.communicate(timeout=30)[0]
        outputs.append(killed[: killed.rfind("\n") + 1])  # a line the kill cut short: dropped
    worker = spawn(postgres_url, workflows, messages)
    out, err = worker.communicate(timeout=300)
    assert worker.returncode == 0 and out.endswith("done\n"), err
    outputs.append(out)
    counts = [
        ([(0, 0)] + [line_counts(line) for line in o.splitlines() if line.startswith("delivered")])[
            -1
        ]
        for o in outputs
    ]
    print("delivered in the same process (next write, final status), per run:", counts)
    print("sends that returned, per run:", [o.count("acked ") for o in outputs])
    if messages > 1:
        assert sum(c[0] for c in counts) > 0  # the paths under test ran
    assert sum(c[1] for c in counts) > 0
    acked = [
        line.split(" ", 1)[1]
        for o in outputs
        for line in o.splitlines()
        if line.startswith("acked ")
    ]

    with psycopg.connect(postgres_url, options="-c search_path=orchestrator") as conn:
        rows = conn.execute("SELECT workflow_id, status, output FROM workflows").fetchall()
        steps = conn.execute(
            "SELECT workflow_id, output FROM steps WHERE kind = 'recv' AND output IS NOT NULL"
        ).fetchall()
        consumed = conn.execute(
            "SELECT destination_id, payload FROM messages WHERE consumed"
        ).fetchall()
        waiting = conn.execute(
            "SELECT destination_id, payload FROM messages WHERE NOT consumed"
        ).fetchall()
        last_recv = dict(
            conn.execute(
                "SELECT workflow_id, max(step_number) FROM steps WHERE kind = 'recv'"
                " GROUP BY workflow_id"
            ).fetchall()
        )
        last_output = {
            w: json.loads(o)
            for w, n, o in conn.execute(
                "SELECT workflow_id, step_number, output FROM steps WHERE kind = 'recv'"
            ).fetchall()
            if n == last_recv[w]
        }
    assert len(rows) == workflows
    checkpoints = Counter((w, json.loads(o)) for w, o in steps)
    taken = Counter((w, json.loads(p)) for w, p in consumed)
    assert max(checkpoints.values()) == 1 and max(taken.values(), default=1) == 1
    assert not taken - checkpoints  # each consumed message checkpointed, once
    for workflow_id, message in checkpoints - taken:  # recorded with the final status only
        assert last_output[workflow_id] == message
    assert not set(checkpoints) & {(w, json.loads(p)) for w, p in waiting}  # none received twice
    received = {message for (_, message) in checkpoints}
    assert not [m for m in acked if m not in received]  # every send that returned: received
    by_workflow: dict[str, list[str]] = {}
    for w, m in checkpoints:
        by_workflow.setdefault(w, []).append(m)
    for workflow_id, status, output in rows:
        received = by_workflow.get(workflow_id, [])
        assert status == "SUCCESS", workflow_id
        assert len(received) == messages
        assert sorted(json.loads(output)) == sorted(received)
