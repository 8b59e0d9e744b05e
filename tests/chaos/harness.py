"""The chaos run: a fleet of workers, a client, faults from a seeded schedule, then the checker.

Everything random is drawn from ``random.Random(seed)`` before the run starts: each saga's
shape (fraud, a lost charge answer, its payment sent once, twice or never, a cancel with
rollback and when) and the fault schedule (when, which fault, which worker, how long). The seed
is printed first; running again with it replays the same schedule (the interleavings of real
processes still differ, which is the point of running many seeds).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from orchestrator import Orchestrator
from orchestrator.errors import (
    StoreError,
    WorkflowFinishedError,
    WorkflowNotFoundError,
    WorkflowStateError,
)
from tests.chaos import cluster
from tests.chaos.app import PAYMENT_TOPIC, QUEUE, Order
from tests.chaos.check import Report, check, install_audit
from tests.recovery.ledger import Ledger

ROOT = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 2.0
FAULTS = ("sigkill", "sigstop", "sigterm", "pg_terminate", "pg_restart")
WEIGHTS = {"sigkill": 6.0, "sigstop": 1.5, "sigterm": 1.0, "pg_terminate": 1.0, "pg_restart": 0.5}
ENDED = {"SUCCESS", "COMPENSATED", "CANCELLED", "ERROR", "COMPENSATION_FAILED"}


@dataclass(frozen=True)
class SagaPlan:
    order: Order
    at: float  # seconds after the run starts: enqueued
    payments: int  # 0 (never paid: it times out and rolls back), 1, or 2 (a duplicate)
    pay_after: float
    cancel_after: float | None  # a cancel with rollback, this long after it was enqueued


@dataclass(frozen=True)
class Fault:
    at: float
    kind: str
    worker: int
    seconds: float  # how long a worker stays paused, or down before its restart


@dataclass
class Plan:
    sagas: list[SagaPlan]
    faults: list[Fault]


def make_plan(
    seed: int,
    *,
    sagas: int,
    seconds: float,
    kills: int | None,
    workers: int,
    restarts: bool,
) -> Plan:
    """Everything the run will do, drawn from ``seed``."""
    rng = random.Random(seed)
    window = seconds * 0.85
    plans = []
    for i in range(sagas):
        order = Order(
            order_id=f"order-{i:04}",
            fraud=rng.random() < 0.08,
            lost_answer=rng.random() < 0.15,
        )
        payments = rng.choices((0, 1, 2), weights=(0.12, 0.6, 0.28))[0]
        cancel = rng.uniform(0.0, 3.0) if rng.random() < 0.15 else None
        plans.append(
            SagaPlan(order, rng.uniform(0, window), payments, rng.uniform(0.05, 2.0), cancel)
        )
    plans.sort(key=lambda plan: plan.at)
    schedule: list[Fault] = []
    kinds = [k for k in FAULTS if restarts or k != "pg_restart"]
    t = rng.uniform(0.5, 2.0)
    while True:
        kind = rng.choices(kinds, weights=[WEIGHTS[k] for k in kinds])[0]
        pause = rng.uniform(LEASE_SECONDS * 1.5, LEASE_SECONDS * 3) if kind == "sigstop" else 0
        down = rng.uniform(0.2, 1.5)
        schedule.append(Fault(t, kind, rng.randrange(workers), pause or down))
        t += rng.uniform(1.0, 4.0)
        killed = sum(f.kind == "sigkill" for f in schedule)
        if (kills is not None and killed >= kills and t > window) or (
            kills is None and t > seconds
        ):
            break
    # Every kind of fault at least once, however short the run: SIGKILLs (the most frequent)
    # make way for the kinds the schedule would otherwise miss.
    missing = [kind for kind in kinds if kind not in {f.kind for f in schedule}]
    kills_at = [i for i, fault in enumerate(schedule) if fault.kind == "sigkill"]
    positions = rng.sample(kills_at, min(len(missing), max(len(kills_at) - 1, 0)))
    for position, kind in zip(positions, missing, strict=False):
        old = schedule[position]
        pause = rng.uniform(LEASE_SECONDS * 1.5, LEASE_SECONDS * 3)
        schedule[position] = Fault(
            old.at, kind, old.worker, pause if kind == "sigstop" else old.seconds
        )
    while kills is not None and sum(f.kind == "sigkill" for f in schedule) < kills:
        t += rng.uniform(1.0, 4.0)  # the kills a replacement took, made up at the end
        schedule.append(Fault(t, "sigkill", rng.randrange(workers), rng.uniform(0.2, 1.5)))
    return Plan(plans, schedule)


@dataclass
class Fleet:
    """The workers (``saga worker`` processes), by index; each logs to its own file."""

    url: str
    ledger: Path
    logs: Path
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    log_offsets: dict[int, int] = field(default_factory=dict)  # where this incarnation's log begins
    # Workers a process fault is acting on (killed and not yet back, stopped, stopping): a
    # second fault on one of them would race the first (a SIGTERM to a worker being killed).
    busy: set[int] = field(default_factory=set)

    def executor(self, index: int) -> str:
        return f"chaos-w{index}"

    def start(self, index: int) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": self.url,
            "CHAOS_LEDGER": str(self.ledger),
            "ORCHESTRATOR_LEASE_SECONDS": str(LEASE_SECONDS),
            "PGAPPNAME": self.executor(index),
        }
        env.pop("ORCHESTRATOR_DATABASE_URL", None)
        command = [sys.executable, "-m", "orchestrator.cli", "worker", "tests.chaos.app:app"]
        command += ["--executor-id", self.executor(index), "--shutdown-timeout", "3"]
        with (self.logs / f"{self.executor(index)}.log").open("ab") as log:
            self.log_offsets[index] = log.tell()
            self.processes[index] = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def running(self, index: int) -> bool:
        """Launched: it said so in its log (a process still importing has no signal handlers:
        a SIGTERM then kills it like any Python program)."""
        log = self.logs / f"{self.executor(index)}.log"
        if not log.exists():
            return False
        with log.open("rb") as text:
            text.seek(self.log_offsets.get(index, 0))
            mine = text.read().decode(errors="replace")
        return f"worker {self.executor(index)} running" in mine

    def alive(self, index: int) -> bool:
        process = self.processes.get(index)
        return process is not None and process.poll() is None

    def signal(self, index: int, signum: int) -> None:
        process = self.processes.get(index)
        if process is not None and process.poll() is None:
            process.send_signal(signum)

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class Run:
    def __init__(
        self, options: argparse.Namespace, url: str, work: Path, private: cluster.Cluster | None
    ) -> None:
        self.options = options
        self.url = url
        self.work = work
        self.private = private
        self.ledger_path = work / "ledger.db"
        self.ledger = Ledger(self.ledger_path)
        self.fleet = Fleet(url, self.ledger_path, work)
        self.started = 0.0
        self.fault_log: list[tuple[float, str, int]] = []
        self.ended_at: dict[str, float] = {}

    def log(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:7.2f}s] {message}", flush=True)

    async def client_op(self, what: str, operation: Any) -> Any:
        """A client call, retried while the database restarts; answers that say "too late"
        (finished, rolling back, not there yet) are fine."""
        for _ in range(60):
            try:
                return await operation()
            except (WorkflowFinishedError, WorkflowStateError, WorkflowNotFoundError):
                return None
            except StoreError as error:
                self.log(f"client: {what}: {error}; retrying")
                await asyncio.sleep(1.0)
        raise RuntimeError(f"client: {what} kept failing")

    async def drive_saga(self, client: Orchestrator, checkout: Any, plan: SagaPlan) -> None:
        await asyncio.sleep(max(0.0, self.started + plan.at - time.monotonic()))
        order_id = plan.order.order_id
        await self.client_op(
            f"start {order_id}",
            lambda: client.start(checkout, plan.order, workflow_id=order_id, queue=QUEUE),
        )
        actions = []
        if plan.payments:
            actions.append((plan.pay_after, "pay"))
        if plan.cancel_after is not None:
            actions.append((plan.cancel_after, "cancel"))
        began = time.monotonic()
        for after, action in sorted(actions):
            await asyncio.sleep(max(0.0, began + after - time.monotonic()))
            if action == "pay":
                for _ in range(plan.payments):  # the second one is a duplicate delivery
                    await self.client_op(
                        f"pay {order_id}",
                        lambda: client.send(
                            order_id,
                            {"paid": True},
                            topic=PAYMENT_TOPIC,
                            idempotency_key=f"payment-{order_id}",
                        ),
                    )
            else:
                await self.client_op(
                    f"cancel {order_id}", lambda: client.cancel(order_id, compensate=True)
                )

    async def inject(self, fault: Fault) -> None:
        await asyncio.sleep(max(0.0, self.started + fault.at - time.monotonic()))
        index = fault.worker
        executor = self.fleet.executor(index)
        if fault.kind in ("sigkill", "sigstop", "sigterm"):
            if index in self.fleet.busy or not self.fleet.alive(index):
                self.log(f"{fault.kind} {executor}: skipped (an earlier fault is acting on it)")
                return
            self.fleet.busy.add(index)
            try:
                await self.process_fault(fault)
            finally:
                self.fleet.busy.discard(index)
            return
        self.fault_log.append((time.monotonic(), fault.kind, index))
        if fault.kind == "pg_terminate":
            self.log(f"pg_terminate_backend on {executor}'s sessions")
            await asyncio.to_thread(self.terminate_sessions, executor)
        elif fault.kind == "pg_restart" and self.private is not None:
            mode = "immediate" if fault.worker % 2 else "fast"
            self.log(f"PostgreSQL restart ({mode})")
            await asyncio.to_thread(self.private.restart, mode)
            self.log("PostgreSQL is back")

    async def process_fault(self, fault: Fault) -> None:
        """A signal to one worker, and its restart where the signal ends it."""
        index = fault.worker
        executor = self.fleet.executor(index)
        self.fault_log.append((time.monotonic(), fault.kind, index))
        if fault.kind == "sigkill":
            self.log(f"SIGKILL {executor}; back in {fault.seconds:.1f} s")
            self.fleet.signal(index, signal.SIGKILL)
            await asyncio.to_thread(self.fleet.processes[index].wait)
            await asyncio.sleep(fault.seconds)
            self.fleet.start(index)
        elif fault.kind == "sigstop":
            self.log(f"SIGSTOP {executor} for {fault.seconds:.1f} s (past its lease)")
            self.fleet.signal(index, signal.SIGSTOP)
            await asyncio.sleep(fault.seconds)
            self.fleet.signal(index, signal.SIGCONT)
        elif fault.kind == "sigterm":
            for _ in range(100):  # a worker still starting up is given a moment to launch
                if self.fleet.running(index) or not self.fleet.alive(index):
                    break
                await asyncio.sleep(0.1)
            self.log(f"SIGTERM {executor}; restarted when it has stopped")
            self.fleet.signal(index, signal.SIGTERM)
            code = await asyncio.to_thread(self.fleet.processes[index].wait)
            if code != 0:
                raise RuntimeError(f"{executor} exited {code} on SIGTERM")
            self.fleet.start(index)

    def terminate_sessions(self, executor: str) -> None:
        with contextlib.suppress(psycopg.Error), psycopg.connect(self.url, autocommit=True) as db:
            db.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s",
                (executor,),
            )

    async def wait_ended(self, client: Orchestrator, ids: list[str], timeout: float) -> list[str]:
        """Until every saga has ended (or ``timeout``); the ones still running."""
        deadline = time.monotonic() + timeout
        pending = set(ids)
        while pending and time.monotonic() < deadline:
            with contextlib.suppress(StoreError):
                infos = await client.list_workflows(status=list(ENDED), limit=10_000)
                now = time.monotonic()
                for info in infos:
                    if info.workflow_id in pending:
                        pending.discard(info.workflow_id)
                        self.ended_at[info.workflow_id] = now
            await asyncio.sleep(0.25)
        return sorted(pending)

    async def run(self, plan: Plan) -> tuple[Report, dict[str, Any]]:
        client = Orchestrator(
            "chaos", self.url, executor_id="chaos-client", app_version="chaos-client"
        )
        client.queue(QUEUE, dequeue=False)

        @client.workflow(name="checkout")
        async def checkout(order: Order) -> str:  # runs on the workers only
            raise AssertionError("the chaos client never runs a checkout")

        async with client:  # launching it applies the migrations
            install_audit(self.url)
            for index in range(self.options.workers):
                self.fleet.start(index)
            self.started = time.monotonic()
            drivers = [
                asyncio.create_task(self.drive_saga(client, checkout, s)) for s in plan.sagas
            ]
            faults = [asyncio.create_task(self.inject(f)) for f in plan.faults]
            await asyncio.gather(*drivers, *faults)
            last_fault = max((at for at, _, _ in self.fault_log), default=self.started)
            self.log(f"{len(plan.sagas)} sagas started, {len(self.fault_log)} faults injected")
            stuck = await self.wait_ended(
                client, [s.order.order_id for s in plan.sagas], self.options.drain
            )
        self.fleet.stop_all()
        report = check(self.url, self.ledger.snapshot(), [s.order.order_id for s in plan.sagas])
        for workflow_id in stuck:
            report.fail(workflow_id, "still running when the drain timed out")
        ends = [at - last_fault for at in self.ended_at.values()]
        figures = {
            "seconds": round(time.monotonic() - self.started, 1),
            "faults": dict(
                sorted(
                    {
                        k: sum(1 for _, kind, _ in self.fault_log if kind == k) for k in FAULTS
                    }.items()
                )
            ),
            "last_end_after_last_fault_s": round(max(ends), 2) if ends else None,
        }
        return report, figures


def _quiet_logs() -> None:
    """The client's own reconnections are expected (the database restarts): errors only."""
    logging.basicConfig(level=logging.ERROR, format="client %(name)s: %(message)s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--seed", type=int, default=None, help="default: a random one (printed)")
    parser.add_argument("--sagas", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=200, help="SIGKILLs to reach (0: none)")
    parser.add_argument(
        "--seconds",
        type=float,
        default=60.0,
        help="the fault window when --kills is 0 (sagas start within it)",
    )
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument(
        "--drain",
        type=float,
        default=180.0,
        help="seconds to wait for every saga to end after the faults",
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="run on this server (no restarts) instead of a private cluster",
    )
    parser.add_argument("--work-dir", default=None, help="keep logs and the ledger here")
    options = parser.parse_args(argv)
    _quiet_logs()
    seed = options.seed if options.seed is not None else random.SystemRandom().randrange(10**6)
    print(f"chaos seed {seed} (python -m tests.chaos --seed {seed} ... reproduces the schedule)")
    work = Path(options.work_dir or tempfile.mkdtemp(prefix="chaos-"))
    if (work / "ledger.db").exists():  # its effects would count against this run's history
        print(
            f"{work} holds the ledger of an earlier run: pass an empty --work-dir", file=sys.stderr
        )
        return 2
    work.mkdir(parents=True, exist_ok=True)
    private: cluster.Cluster | None = None
    url = options.database_url
    if url is None:
        reason = cluster.available()
        if reason is not None:
            print(f"no private PostgreSQL cluster ({reason}): pass --database-url", file=sys.stderr)
            return 2
        private = cluster.Cluster()
        private.create()
        private.start()
        url = private.url
    kills = options.kills or None
    seconds = options.seconds
    if kills is not None:  # faults every 1-4 s (2.5 on average), about 60% of them SIGKILLs
        seconds = max(seconds, kills / 0.6 * 2.5)
    plan = make_plan(
        seed,
        sagas=options.sagas,
        seconds=seconds,
        kills=kills,
        workers=options.workers,
        restarts=private is not None,
    )
    print(
        f"{len(plan.sagas)} sagas, {len(plan.faults)} faults over {plan.faults[-1].at:.0f} s;"
        f" logs in {work}",
        flush=True,
    )
    report: Report | None = None
    try:
        report, figures = asyncio.run(Run(options, url, work, private).run(plan))
    finally:
        if private is not None:
            failed = report is None or bool(report.violations)
            private.stop(keep=failed)
            if failed:
                print(f"the database is kept for a post-mortem: pg_ctl -D {private.data} start")
    print(
        f"statuses: {dict(report.statuses)}; compensations applied: {report.compensations};"
        f" re-executions: {report.reexecutions}"
    )
    print(f"figures: {figures}")
    if report.violations:
        print(f"FAILED: {len(report.violations)} violations (seed {seed}):")
        for violation in report.violations[:50]:
            print(f"  {violation}")
        return 1
    print(f"passed: every saga ended; history and ledger agree (seed {seed})")
    return 0
