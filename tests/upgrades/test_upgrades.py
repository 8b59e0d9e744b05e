"""Releases of the checkout (tests/upgrades/shop.py) as real worker processes on both stores:
v1 workers leave sagas waiting for their payment and are SIGKILLed; the upgrade check replays
those histories against the next release's code (``saga upgrade-check``), which adopts them or
is told where they diverge; a release that cannot carry them says they are stranded and runs
none of them; a patch carries old and new sagas; the patch is deprecated once the old ones
have finished."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator import Orchestrator, WorkflowStatus
from tests import clocks
from tests.processes import ROOT
from tests.recovery.ledger import Ledger

QUEUE = "orders"  # (tests/upgrades/shop.py, imported by the workers only)
PAYMENT = "payment"

pytestmark = [pytest.mark.recovery, pytest.mark.slow]

LEASE_SECONDS = 1.5
APP = "tests.upgrades.shop:app"


class Releases:
    """Worker processes of the shop's releases, and the saga CLI run with a release's code."""

    def __init__(self, database_url: str, ledger: Path, logs: Path) -> None:
        self.database_url = database_url
        self.ledger = ledger
        self.logs = logs
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def env(self, release: str) -> dict[str, str]:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": self.database_url,
            "LEDGER_PATH": str(self.ledger),
            "UPGRADE_RELEASE": release,
            "ORCHESTRATOR_LEASE_SECONDS": str(LEASE_SECONDS),
            "ORCHESTRATOR_STRANDED_CHECK_SECONDS": "0.5",
        }
        env.pop("ORCHESTRATOR_DATABASE_URL", None)
        return env

    def start(self, release: str, executor_id: str) -> None:
        command = [sys.executable, "-m", "orchestrator.cli", "worker", APP]
        command += ["--executor-id", executor_id, "--shutdown-timeout", "2"]
        with self.log_path(executor_id).open("ab") as log:
            self.processes[executor_id] = subprocess.Popen(
                command, cwd=ROOT, env=self.env(release), stdout=log, stderr=subprocess.STDOUT
            )

    def log_path(self, executor_id: str) -> Path:
        return self.logs / f"{executor_id}.log"

    def log(self, executor_id: str) -> str:
        path = self.log_path(executor_id)
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self, executor_id: str, signum: int = signal.SIGKILL) -> None:
        process = self.processes[executor_id]
        process.send_signal(signum)
        process.wait(30)

    def saga(self, release: str, *args: str) -> subprocess.CompletedProcess[str]:
        """``saga ARGS`` with ``release``'s code importable (and its database)."""
        return subprocess.run(
            [sys.executable, "-m", "orchestrator.cli", *args],
            cwd=ROOT,
            env=self.env(release),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def upgrade_check(self, release: str, *flags: str) -> tuple[int, list[dict[str, Any]]]:
        done = self.saga(release, "upgrade-check", APP, "--json", *flags)
        assert done.returncode in (0, 1), done.stdout + done.stderr
        return done.returncode, json.loads(done.stdout)

    def close(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / "ledger.db")


@pytest.fixture
def releases(database_url: str, ledger: Ledger, tmp_path: Path) -> Iterator[Releases]:
    fleet = Releases(database_url, Path(ledger.path), tmp_path)
    try:
        yield fleet
    finally:
        fleet.close()


@pytest.fixture
async def client(database_url: str, releases: Releases) -> AsyncIterator[Orchestrator]:
    """Starts checkouts on the queue and pays them; never runs one."""
    app = Orchestrator("shop", database_url, executor_id="client", app_version="client")
    app.queue(QUEUE, dequeue=False)

    @app.workflow(name="checkout")
    async def checkout(order: str) -> str:
        raise AssertionError("checkouts run on the workers")

    async with app:
        yield app


async def until(predicate: Any, what: str, releases: Releases, timeout: float = 60) -> None:
    """tests/clocks.until, failing with ``what`` and the workers' logs."""

    def explain() -> str:
        logs = "\n".join(f"--- {e}\n{releases.log(e)[-3000:]}" for e in releases.processes)
        return f": {what}\n{logs}"

    await clocks.until(predicate, within=timeout, what=explain)


async def waiting_for_payment(client: Orchestrator, orders: list[str]) -> bool:
    """Every order's saga waits in its recv (the recv's deadline is recorded)."""
    for order in orders:
        steps = await client.list_steps(order)
        if not any(step.name == "recv.deadline" for step in steps):
            return False
    return True


async def start_and_park(
    client: Orchestrator, releases: Releases, orders: list[str], executor_id: str
) -> None:
    for order in orders:
        await client.start("checkout", order, workflow_id=order, queue=QUEUE)
    await until(lambda: waiting_for_payment(client, orders), "sagas wait for payment", releases)


async def pay_and_finish(client: Orchestrator, releases: Releases, orders: list[str]) -> None:
    for order in orders:
        await client.send(order, True, topic=PAYMENT, idempotency_key=f"pay-{order}")

    async def finished() -> bool:
        infos = [await client.retrieve(order).status() for order in orders]
        return all(info.status is WorkflowStatus.SUCCESS for info in infos)

    await until(finished, "every saga ends SUCCESS", releases)


async def dead(client: Orchestrator, releases: Releases, executor_id: str) -> None:
    """Until the worker's lease has expired (a SIGKILLed worker's sagas are movable then)."""

    async def expired() -> bool:
        workers = {w.executor_id: w for w in await client.list_workers()}
        return executor_id in workers and not workers[executor_id].alive

    await until(expired, f"{executor_id}'s lease expires", releases)


async def step_names(client: Orchestrator, order: str) -> list[str]:
    return [step.name for step in await client.list_steps(order)]


async def test_a_compatible_release_adopts_the_sagas_in_flight_and_finishes_them(
    client: Orchestrator, releases: Releases, ledger: Ledger
) -> None:
    orders = ["c-1", "c-2", "c-3"]
    releases.start("v1", "w1")
    await start_and_park(client, releases, orders, "w1")
    releases.kill("w1")
    await dead(client, releases, "w1")

    code, verdicts = releases.upgrade_check("v2-compatible")
    assert code == 0
    assert sorted(v["workflow_id"] for v in verdicts) == orders
    for verdict in verdicts:
        assert verdict["verdict"] == "compatible", verdict
        assert (verdict["workflow_name"], verdict["app_version"]) == ("checkout", "v1")
        assert verdict["adopted"] is False

    # One moved by hand (the operator's command), the others adopted by the check.
    moved = releases.saga("v1", "workflows", "move", "c-1", "--to-version", "v2-compatible")
    assert moved.returncode == 0 and "moved 1 workflow(s)" in moved.stdout, moved.stderr
    code, verdicts = releases.upgrade_check("v2-compatible", "--adopt")
    assert code == 0
    adopted = {v["workflow_id"]: (v["app_version"], v["adopted"]) for v in verdicts}
    assert adopted == {
        "c-1": ("v2-compatible", False),
        "c-2": ("v1", True),
        "c-3": ("v1", True),
    }
    releases.start("v2-compatible", "w2")
    await pay_and_finish(client, releases, orders)
    for order in orders:
        info = await client.retrieve(order).status()
        assert info.app_version == "v2-compatible"
        assert await client.retrieve(order).result() == f"receipt charge:{order} (v2-compatible)"
    ledger.snapshot().check_balanced(
        {f"{step}:{order}" for step in ("reserve", "charge") for order in orders}, crashes=0
    )


async def test_an_inserted_step_needs_a_patch_and_the_patch_carries_old_and_new_sagas(
    client: Orchestrator, releases: Releases, ledger: Ledger
) -> None:
    old = ["old-1", "old-2"]
    releases.start("v1", "w1")
    await start_and_park(client, releases, old, "w1")
    releases.kill("w1")
    await dead(client, releases, "w1")

    # The fraud check inserted before the wait, unpatched: named, exit code 1.
    code, verdicts = releases.upgrade_check("v2-fraud")
    assert code == 1
    for verdict in verdicts:
        assert verdict["verdict"] == "needs_patch", verdict
        assert (verdict["step"], verdict["recorded"], verdict["called"]) == (
            2,
            "recv.deadline",
            "fraud_check",
        )
    table = releases.saga("v2-fraud", "upgrade-check", APP)
    assert table.returncode == 1
    assert "needs_patch" in table.stdout and "fraud_check" in table.stdout, table.stdout

    # Deployed anyway: it says the old sagas are stranded, and runs none of them.
    releases.start("v2-fraud", "w2")
    await until(
        lambda: "2 workflows stranded" in releases.log("w2") and "v1: 2" in releases.log("w2"),
        "the v2 worker warns of the stranded sagas",
        releases,
    )
    assert (await client.stranded()) == {"v1": 2}
    listed = releases.saga("v2-fraud", "workflows", "list", "--stranded", "--json")
    assert listed.returncode == 0, listed.stderr
    assert sorted(row["workflow_id"] for row in json.loads(listed.stdout)) == old
    versions = json.loads(releases.saga("v2-fraud", "versions", "--json").stdout)
    by_version = {row["app_version"]: row for row in versions}
    assert by_version["v1"]["stranded"] == 2 and by_version["v1"]["live_workers"] == 0
    assert by_version["v2-fraud"]["live_workers"] == 1
    await asyncio.sleep(1.0)
    assert not any(key.startswith("fraud:") for key in ledger.snapshot().attempts)
    releases.kill("w2", signal.SIGTERM)

    # Behind app.patched(): compatible; adopted, the old sagas skip the check, new ones run it.
    code, verdicts = releases.upgrade_check("v2-patched", "--adopt")
    assert code == 0, verdicts
    assert all(v["verdict"] == "compatible" and v["adopted"] for v in verdicts), verdicts
    releases.start("v2-patched", "w3")
    new = ["new-1"]
    await start_and_park(client, releases, new, "w3")
    assert await client.stranded() == {}
    await pay_and_finish(client, releases, old + new)
    for order in old:
        assert await step_names(client, order) == ["reserve", "recv.deadline", "recv", "charge"]
    assert await step_names(client, "new-1") == [
        "reserve",
        "patch:fraud-check",
        "fraud_check",
        "recv.deadline",
        "recv",
        "charge",
    ]
    expected = {f"{step}:{order}" for step in ("reserve", "charge") for order in old + new}
    ledger.snapshot().check_balanced(expected | {"fraud:new-1"}, crashes=0)

    # Every saga that could skip the check has finished: deprecate the patch. A saga started
    # under the patch (it has the marker) carries on under v3; new ones always check.
    later = ["later-1"]
    await start_and_park(client, releases, later, "w3")
    releases.kill("w3")
    await dead(client, releases, "w3")
    code, verdicts = releases.upgrade_check("v3-deprecated", "--adopt")
    assert code == 0, verdicts
    assert [(v["workflow_id"], v["verdict"], v["adopted"]) for v in verdicts] == [
        ("later-1", "compatible", True)
    ]
    releases.start("v3-deprecated", "w4")
    newest = ["newest-1"]
    await start_and_park(client, releases, newest, "w4")
    await pay_and_finish(client, releases, later + newest)
    assert await step_names(client, "newest-1") == [
        "reserve",
        "fraud_check",
        "recv.deadline",
        "recv",
        "charge",
    ]
    expected |= {f"{step}:{order}" for step in ("reserve", "fraud", "charge") for order in later}
    expected |= {f"{step}:{order}" for step in ("reserve", "fraud", "charge") for order in newest}
    ledger.snapshot().check_balanced(expected | {"fraud:new-1"}, crashes=1)
