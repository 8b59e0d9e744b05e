"""Multi-process worker tests: queues, schedules and failover with real worker processes.

Shared by the worker module (tests/workers/worker_app.py, run by ``orchestrator.cli worker``)
and the tests: the queues both sides declare, and the journal the workers write their effects
and step timings to (the crash-test Ledger plus a ``spans`` table in the same SQLite file).
The tests' helpers live here too: the Fleet of worker processes, polling, interval overlap.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.recovery.ledger import Ledger

if TYPE_CHECKING:
    from orchestrator import Orchestrator

ROOT = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 2
CLIENT_VERSION = "workers-client"  # not the workers' version: the client never takes over


# name -> app.queue(...) options, declared by the workers and (names only) by the test client.
QUEUES: dict[str, dict[str, Any]] = {
    "limits": {"concurrency": 5, "worker_concurrency": 2},
    "rated": {"rate_limit": (10, 1.0)},
    "prio": {"concurrency": 1, "priority": True},
    "dedup": {},
    "parts": {"concurrency": 1, "partitioned": True},
    "delayed": {},
    "sagas": {"worker_concurrency": 10},
    "takeover": {},
    "poison": {"concurrency": 1},
}

# Workflows the workers register (the client registers stubs of the same names to start them).
WORKFLOWS = (
    "short",
    "quick",
    "blocker",
    "held",
    "slow",
    "saga",
    "long_run",
    "gapped",
    "paced_saga",
)
SCHEDULED = "every_second"  # registered by the workers only when WORKERS_SCHEDULE=1
POISON = "not_registered_anywhere"  # registered by the client only

_SPANS = """
CREATE TABLE IF NOT EXISTS spans (
    id INTEGER PRIMARY KEY, key TEXT NOT NULL, label TEXT NOT NULL, executor TEXT NOT NULL,
    started REAL NOT NULL, ended REAL NOT NULL
);
"""


@dataclass(frozen=True)
class Span:
    """One executed effect: its ledger key, what it belongs to, who ran it and when."""

    key: str
    label: str
    executor: str
    started: float
    ended: float

    @property
    def workflow_id(self) -> str:
        own = self.key.removeprefix("fwd:").removeprefix("comp:").split("@")[0]
        return own.rsplit(":", 1)[0]


class Journal:
    """The Ledger (attempts and applied-once effects per key) plus when and where each attempt
    ran: the Ledger's tables and a ``spans`` table in one SQLite file (WAL), written by every
    worker process, each write one transaction on a per-thread connection."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.ledger = Ledger(path)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SPANS)
        self._local = threading.local()

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=60, isolation_level=None)

    def record(self, key: str, label: str, executor: str, started: float) -> None:
        """Apply the effect ``key`` as Ledger.record does (an attempt; applied once per key)
        and log this attempt's span, in one transaction."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._connect()
            db.execute("PRAGMA synchronous=NORMAL")
        pid = os.getpid()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("INSERT INTO attempts (key, pid) VALUES (?, ?)", (key, pid))
            db.execute("INSERT OR IGNORE INTO applied (key, pid) VALUES (?, ?)", (key, pid))
            db.execute(
                "INSERT INTO spans (key, label, executor, started, ended) VALUES (?, ?, ?, ?, ?)",
                (key, label, executor, started, time.time()),
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def spans(self, label: str | None = None) -> list[Span]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT key, label, executor, started, ended FROM spans"
                " WHERE ? IS NULL OR label = ? ORDER BY started, id",
                (label, label),
            ).fetchall()
        return [Span(*row) for row in rows]


class Fleet:
    """Worker processes (``orchestrator.cli worker``) started and signalled by executor id; each
    logs to its own file (a pipe nobody reads would block a chatty worker)."""

    def __init__(
        self,
        database_url: str,
        ledger_path: Path,
        log_dir: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.database_url = database_url
        self.ledger_path = ledger_path
        self.log_dir = log_dir
        self.env = env or {}  # more settings of the workers (ORCHESTRATOR_...)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, executor_id: str, *, schedule: bool = False) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": self.database_url,
            "ORCHESTRATOR_LEASE_SECONDS": str(LEASE_SECONDS),
            "LEDGER_PATH": str(self.ledger_path),
            "WORKERS_SCHEDULE": "1" if schedule else "0",
            "PGAPPNAME": self.application_name(executor_id),  # libpq: names its sessions
            # A pool sized to what a worker uses (docs/scaling.md): with the default 20, three
            # fleets at once held 79-87 sessions of PostgreSQL's 100.
            "ORCHESTRATOR_DATABASE_POOL_SIZE": "8",
            **self.env,
        }
        env.pop("ORCHESTRATOR_DATABASE_URL", None)
        command = [sys.executable, "-m", "orchestrator.cli", "worker"]
        command += ["tests.workers.worker_app:app", "--executor-id", executor_id]
        with (self.log_dir / f"{executor_id}.log").open("ab") as log:
            process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        self.processes[executor_id] = process
        return process

    @staticmethod
    def application_name(executor_id: str) -> str:
        return f"orch-test-worker-{executor_id}"

    async def sessions(self, executor_id: str) -> int:
        """How many PostgreSQL sessions the worker still has. After a SIGKILL, a session ends
        once the statement it was running (a commit, perhaps) is done: at zero, every write
        the worker sent is committed or rolled back, none still in flight."""
        import psycopg

        query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
        async with await psycopg.AsyncConnection.connect(self.database_url) as conn:
            cursor = await conn.execute(query, (self.application_name(executor_id),))
            row = await cursor.fetchone()
        return 0 if row is None else int(row[0])

    def signal(self, executor_id: str, signum: signal.Signals) -> None:
        self.processes[executor_id].send_signal(signum)

    def stop(self, executor_id: str, timeout: float = 20.0) -> int:
        """SIGCONT (in case it is paused), SIGTERM, and SIGKILL if it does not exit in time."""
        process = self.processes[executor_id]
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        return process.returncode

    def close(self) -> None:
        for executor_id in self.processes:
            self.stop(executor_id)

    def logs(self, lines: int = 30) -> str:
        tails = []
        for executor_id in self.processes:
            path = self.log_dir / f"{executor_id}.log"
            text = path.read_text(errors="replace").splitlines() if path.exists() else []
            tails.append(f"--- {executor_id}\n" + "\n".join(text[-lines:]))
        return "\n".join(tails)


async def until(
    predicate: Callable[[], Awaitable[bool]], timeout: float, what: str, fleet: Fleet | None = None
) -> float:
    """Poll ``predicate`` every 50 ms; how long it took, or fail naming ``what``."""
    began = time.monotonic()
    while not await predicate():
        if time.monotonic() - began > timeout:
            logs = f"\n{fleet.logs()}" if fleet is not None else ""
            raise AssertionError(f"not reached within {timeout} s: {what}{logs}")
        await asyncio.sleep(0.05)
    return time.monotonic() - began


async def in_flight_mid_run(
    client: Orchestrator, queue: str, total: int, ended_at_least: int, fleet: Fleet
) -> Counter[str | None]:
    """Wait until ``queue``'s ``total`` workflows are mid-run: at least ``ended_at_least``
    ended (SUCCESS or COMPENSATED) and some still running; how many run on each worker.

    Both come from one listing. A count of the ended ones followed by a listing of the running
    ones is a race: short sagas (~100 ms) can all end between the two reads, leaving nobody to
    kill. If every one ends before any is seen running, this fails saying so."""
    from orchestrator import WorkflowStatus

    ended_statuses = (WorkflowStatus.SUCCESS, WorkflowStatus.COMPENSATED)
    running_statuses = (WorkflowStatus.PENDING, WorkflowStatus.COMPENSATING)
    in_flight: Counter[str | None] = Counter()

    async def mid_run() -> bool:
        infos = await client.list_workflows(queue=queue, limit=total)
        ended = sum(info.status in ended_statuses for info in infos)
        assert ended < total, f"all {total} ended before one was seen running on a worker"
        in_flight.clear()
        in_flight.update(info.executor_id for info in infos if info.status in running_statuses)
        return ended >= ended_at_least and bool(in_flight)

    what = f"{ended_at_least} of {total} ended, others running"
    await until(mid_run, 60, what, fleet)
    return in_flight


async def wait_alive(client: Orchestrator, fleet: Fleet, *executor_ids: str) -> None:
    """Wait until these workers hold a lease (they are dequeuing)."""

    async def alive() -> bool:
        live = {w.executor_id for w in await client.list_workers() if w.alive}
        return set(executor_ids) <= live

    await until(alive, 30, f"workers {executor_ids} alive", fleet)


def max_overlap(intervals: Sequence[tuple[float, float]]) -> int:
    """The most intervals open at one instant (one ending as another starts: no overlap)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    open_now = most = 0
    for _, delta in events:
        open_now += delta
        most = max(most, open_now)
    return most
