"""The failover run: checkout sagas (tests/chaos/app.py) on worker processes connected to a
primary and its synchronous replica through one multi-host URL; mid-run the primary is stopped
hard and the replica promoted. Then the promises are checked:

- no acknowledged checkpoint lost: before the promotion, the replica (read-only) must hold every
  checkpoint the engine had seen committed. A workflow's durable calls run one after the other
  and each is committed before the next one starts (a deferred checkpoint is written before the
  next call does anything), so an effect of step ``n`` in the ledger means steps ``1..n-1`` of
  its workflow were acknowledged; and a saga the client saw end had its final status
  acknowledged;
- every saga ends, history and ledger agree, every effect applied once (tests/chaos/check.py);
- figures: how long after the promotion the first checkpoint commits on the new primary, and
  when the last saga ends (bench/failover.py prints them; tests never assert timings).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from orchestrator import Orchestrator
from orchestrator.errors import StoreError, WorkflowFinishedError, WorkflowNotFoundError
from tests.chaos.app import PAYMENT_TOPIC, QUEUE, Order
from tests.chaos.check import check, install_audit
from tests.chaos.harness import Fleet
from tests.failover.replica import ReplicatedPair
from tests.recovery.ledger import Ledger

ENDED = ("SUCCESS", "COMPENSATED", "CANCELLED", "ERROR", "COMPENSATION_FAILED")


@dataclass
class FailoverReport:
    sagas: int
    statuses: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    checked_acknowledged: int = 0  # acknowledged checkpoints found on the replica
    figures: dict[str, Any] = field(default_factory=dict)


def _step_number(entry: str) -> tuple[str, int] | None:
    """``fwd:<wf>:<n>`` or ``comp:<wf>:<n>@<forward key>`` -> (wf, n)."""
    kind, _, rest = entry.partition(":")
    if kind == "comp":
        rest = rest.partition("@")[0]
    elif kind != "fwd":
        return None
    workflow_id, _, number = rest.rpartition(":")
    return (workflow_id, int(number)) if number.isdigit() else None


def _read(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, options="-c search_path=orchestrator") as db:
        return db.execute(query).fetchall()  # type: ignore[arg-type]


class FailoverRun:
    def __init__(
        self,
        pair: ReplicatedPair,
        work: Path,
        *,
        sagas: int,
        workers: int,
        down_seconds: float,
        seed: int,
    ) -> None:
        self.pair = pair
        self.work = work
        self.sagas = sagas
        self.workers = workers
        self.down_seconds = down_seconds
        self.rng = random.Random(seed)
        self.ledger_path = work / "ledger.db"
        self.ledger = Ledger(self.ledger_path)
        self.fleet = Fleet(pair.url, self.ledger_path, work)
        self.report = FailoverReport(sagas)

    async def client_op(self, operation: Any) -> Any:
        """A client call; during the outage the store retries it until the new primary
        answers (its reconnect_timeout), and "too late" answers are fine."""
        for _ in range(5):
            try:
                return await operation()
            except (WorkflowFinishedError, WorkflowNotFoundError):
                return None
            except StoreError:
                await asyncio.sleep(1.0)
        raise RuntimeError("a client call kept failing")

    async def drive(self, client: Orchestrator, checkout: Any, order: Order) -> None:
        oid = order.order_id
        await self.client_op(lambda: client.start(checkout, order, workflow_id=oid, queue=QUEUE))
        await asyncio.sleep(self.rng.uniform(0.1, 1.0))
        for _ in range(self.rng.choice((1, 1, 2))):  # a duplicate delivery, sometimes
            await self.client_op(
                lambda: client.send(
                    oid, {"paid": True}, topic=PAYMENT_TOPIC, idempotency_key=f"payment-{oid}"
                )
            )

    def check_replica(self, ended_before: set[str]) -> None:
        """The replica, read before its promotion, holds every acknowledged checkpoint."""
        snapshot = self.ledger.snapshot()
        recorded = set(
            _read(self.pair.read_url, "SELECT workflow_id, step_number FROM steps")  # type: ignore[arg-type]
        )
        statuses = dict(_read(self.pair.read_url, "SELECT workflow_id, status FROM workflows"))
        acknowledged: set[tuple[str, int]] = set()
        for entry in snapshot.attempts:
            found = _step_number(entry)
            if found is not None:
                workflow_id, number = found
                acknowledged.update((workflow_id, n) for n in range(1, number))
        for workflow_id, number in sorted(acknowledged - recorded):
            self.report.violations.append(
                f"{workflow_id}: step {number} was acknowledged (a later step ran) but the"
                " replica does not have it"
            )
        for workflow_id in sorted(ended_before):
            if statuses.get(workflow_id) not in ENDED:
                self.report.violations.append(
                    f"{workflow_id}: the client saw it end, the replica has it"
                    f" {statuses.get(workflow_id)}"
                )
        self.report.checked_acknowledged = len(acknowledged & recorded) + len(ended_before)

    async def wait_for(self, predicate: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(psycopg.Error):
                if await asyncio.to_thread(predicate):
                    return True
            await asyncio.sleep(0.02)
        return False

    def checkpoints(self, url: str) -> int:
        return int(_read(url, "SELECT count(*) FROM steps")[0][0])

    async def fail_over(self, client: Orchestrator, ids: list[str]) -> None:
        ended = await client.list_workflows(status=list(ENDED), limit=10_000)
        ended_before = {info.workflow_id for info in ended if info.workflow_id in ids}
        killed = time.monotonic()
        await asyncio.to_thread(self.pair.kill_primary)
        await asyncio.to_thread(self.check_replica, ended_before)
        before = await asyncio.to_thread(self.checkpoints, self.pair.read_url)
        await asyncio.sleep(max(0.0, killed + self.down_seconds - time.monotonic()))
        await asyncio.to_thread(self.pair.promote)
        promoted = time.monotonic()
        resumed = await self.wait_for(lambda: self.checkpoints(self.pair.read_url) > before, 60)
        figures = self.report.figures
        figures["down_s"] = round(promoted - killed, 2)
        figures["ended_before_kill"] = len(ended_before)
        figures["first_checkpoint_after_promotion_s"] = (
            round(time.monotonic() - promoted, 3) if resumed else None
        )
        self.promoted = promoted

    async def run(self) -> FailoverReport:
        client = Orchestrator(
            "chaos", self.pair.url, executor_id="failover-client", app_version="failover-client"
        )
        client.queue(QUEUE, dequeue=False)

        @client.workflow(name="checkout")
        async def checkout(order: Order) -> str:  # runs on the workers only
            raise AssertionError("the client never runs a checkout")

        orders = [
            Order(order_id=f"order-{i:03}", fraud=self.rng.random() < 0.1,
                  lost_answer=self.rng.random() < 0.15)
            for i in range(self.sagas)
        ]  # fmt: skip
        ids = [o.order_id for o in orders]
        async with client:
            install_audit(self.pair.url)
            for index in range(self.workers):
                self.fleet.start(index)
            drivers = [asyncio.create_task(self.drive(client, checkout, o)) for o in orders]
            # Fail over once the sagas are under way: a checkpoint per saga on average.
            await self.wait_for(lambda: self.checkpoints(self.pair.url) >= self.sagas, 60)
            await self.fail_over(client, ids)
            await asyncio.gather(*drivers)
            pending = set(ids)
            deadline = time.monotonic() + 90
            while pending and time.monotonic() < deadline:
                with contextlib.suppress(StoreError):
                    for info in await client.list_workflows(status=list(ENDED), limit=10_000):
                        pending.discard(info.workflow_id)
                if pending:
                    await asyncio.sleep(0.1)
            self.report.figures["last_end_after_promotion_s"] = round(
                time.monotonic() - self.promoted, 2
            )
        self.fleet.stop_all()
        checked = check(self.pair.url, self.ledger.snapshot(), ids)
        self.report.statuses = checked.statuses
        self.report.violations += checked.violations
        self.report.violations += [f"{wf}: did not end" for wf in sorted(pending)]
        self.report.figures["reexecutions"] = checked.reexecutions
        return self.report


def run_failover(
    work: Path,
    *,
    sagas: int = 30,
    workers: int = 2,
    down_seconds: float = 1.0,
    seed: int = 0,
) -> FailoverReport:
    """Make a replicated pair, run the sagas through a failover, check; the pair is removed
    (kept under ``work`` for a post-mortem when something failed)."""
    logging.basicConfig(level=logging.ERROR, format="client %(name)s: %(message)s")
    pair = ReplicatedPair()
    report: FailoverReport | None = None
    try:
        pair.start()
        runner = FailoverRun(
            pair, work, sagas=sagas, workers=workers, down_seconds=down_seconds, seed=seed
        )
        report = asyncio.run(runner.run())
        return report
    finally:
        pair.stop(keep=report is None or bool(report.violations))
