"""The orchestrator through PgBouncer in transaction pooling mode (PgBouncer 1.18: no prepared
statements, no connect options, sessions shared between transactions): a fleet of worker
processes with one SIGKILLed, the HTTP service, the CLI, and the clear refusals of a pooled
setup that cannot work (docs/operations.md#pgbouncer)."""

from __future__ import annotations

import asyncio
import json
import signal
from collections import Counter
from pathlib import Path

import httpx
import psycopg
import pytest
from click.testing import Result
from typer.testing import CliRunner

from orchestrator import FakeClock, Orchestrator, WorkflowStatus
from orchestrator.cli import cli
from orchestrator.config import Settings
from orchestrator.errors import ConfigurationError
from orchestrator.http import create_app
from tests.http.conftest import start_server
from tests.http.service_app import build_orchestrator
from tests.pgbouncer import PgBouncer, set_search_path
from tests.workers import (
    CLIENT_VERSION,
    LEASE_SECONDS,
    Fleet,
    Journal,
    in_flight_mid_run,
    until,
    wait_alive,
)

pytestmark = [pytest.mark.postgres]

POOLED = {"ORCHESTRATOR_DATABASE_POOLING": "transaction"}
SAGAS = 40
WORKERS = ("b1", "b2")
RUNNING = [WorkflowStatus.PENDING, WorkflowStatus.COMPENSATING]


def fails(n: int) -> bool:
    return n % 4 == 3  # a quarter of the sagas roll back from step 3


def transactions(pgbouncer: PgBouncer, direct_url: str) -> int:
    """How many transactions PgBouncer passed to the database of ``direct_url``."""
    database = direct_url.rsplit("/", 1)[1]
    return sum(
        int(str(row["total_xact_count"]))
        for row in pgbouncer.show("STATS")
        if row["database"] == database
    )


@pytest.mark.recovery
async def test_worker_fleet_through_pgbouncer_survives_a_sigkill(
    pgbouncer: PgBouncer, pooled_url: str, postgres_url: str, tmp_path: Path
) -> None:
    """Workers and client on the pooler, LISTEN and migrations direct: a worker killed
    mid-run has its sagas taken over; every saga ends as it should, every effect once."""
    journal = Journal(tmp_path / "ledger.db")
    env = {**POOLED, "ORCHESTRATOR_DIRECT_DATABASE_URL": postgres_url}
    fleet = Fleet(pooled_url, Path(journal.path), tmp_path, env=env)
    settings = Settings(database_pooling="transaction", direct_database_url=postgres_url)
    client = Orchestrator(
        "workers",
        pooled_url,
        executor_id="pgb-client",
        app_version=CLIENT_VERSION,
        settings=settings,
    )

    @client.workflow(name="saga")
    async def saga(n: int, fail: bool) -> list[str]:
        raise AssertionError("sagas run on the workers")

    client.queue("sagas", worker_concurrency=10, dequeue=False)
    try:
        for executor_id in WORKERS:
            fleet.start(executor_id)
        async with client:
            await wait_alive(client, fleet, *WORKERS)
            await asyncio.gather(
                *(
                    client.start("saga", n, fails(n), workflow_id=f"saga-{n:03}", queue="sagas")
                    for n in range(SAGAS)
                )
            )

            in_flight = await in_flight_mid_run(client, "sagas", SAGAS, 1, fleet)
            victim, _ = in_flight.most_common(1)[0]
            assert victim in WORKERS
            fleet.signal(victim, signal.SIGKILL)
            assert fleet.processes[victim].wait(timeout=10) == -signal.SIGKILL

            async def drained() -> bool:
                stats = await client.queue_stats("sagas")
                return not stats or stats[0].depth + stats[0].running == 0

            await until(drained, 20 * LEASE_SECONDS, "every saga finished", fleet)
            infos = {i.workflow_id: i for i in await client.list_workflows(limit=1000)}
    finally:
        fleet.close()

    assert len(infos) == SAGAS
    for n in range(SAGAS):
        info = infos[f"saga-{n:03}"]
        expected = WorkflowStatus.COMPENSATED if fails(n) else WorkflowStatus.SUCCESS
        assert info.status is expected, (info.workflow_id, info.status, info.error)
    recovered = {wid for wid, info in infos.items() if info.recovery_attempts > 0}
    assert recovered, f"{victim} had nothing in flight: the kill proved nothing"
    assert all(infos[wid].executor_id not in (victim, None) for wid in recovered)

    # The ledger: each completed forward step and each compensation of one applied once.
    snapshot = journal.ledger.snapshot()
    forward = {key.removeprefix("fwd:") for key in snapshot.applied if key.startswith("fwd:")}
    pairs = [key.removeprefix("comp:").split("@") for key in snapshot.applied if key[:5] == "comp:"]
    assert len(forward) + len(pairs) == len(snapshot.applied)
    assert forward == {
        f"saga-{n:03}:{step}" for n in range(SAGAS) for step in ((1, 2) if fails(n) else (1, 2, 3))
    }
    undone = Counter(forward_key for _, forward_key in pairs)
    assert set(undone) == {
        f"saga-{n:03}:{step}" for n in range(SAGAS) if fails(n) for step in (1, 2)
    }
    assert all(count == 1 for count in undone.values())
    # Only the sagas taken over from the victim ran a step twice (the one it was inside).
    twice = {key for key, count in snapshot.attempts.items() if count > 1}
    rerun = {key.removeprefix("fwd:").removeprefix("comp:").split(":")[0] for key in twice}
    assert rerun <= recovered, (rerun, recovered)
    extra = sum(snapshot.attempts.values()) - len(snapshot.applied)
    assert extra <= len(recovered), (extra, len(recovered))
    # It all went through the pooler: far more transactions than sagas.
    assert transactions(pgbouncer, postgres_url) > 3 * SAGAS


async def test_http_service_through_pgbouncer_without_a_direct_url(
    pgbouncer: PgBouncer, pooled_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service (real uvicorn) configured from the environment, pooled, no direct URL
    (no LISTEN: waits poll): start, get, result, and a send that a recv takes."""
    monkeypatch.setenv("ORCHESTRATOR_DATABASE_POOLING", "transaction")
    monkeypatch.delenv("ORCHESTRATOR_DIRECT_DATABASE_URL", raising=False)
    app = build_orchestrator(pooled_url)
    server = start_server(create_app(app, api_key="k"))
    try:
        async with httpx.AsyncClient(
            base_url=server.base_url, headers={"Authorization": "Bearer k"}, timeout=30
        ) as http:
            started = await http.post("/workflows/add", json={"a": 20, "b": 22})
            assert started.status_code == 202, started.text
            links = started.json()["links"]
            result = await http.get(links["result"], params={"timeout": 10})
            assert result.json() == {"status": "SUCCESS", "output": 42}
            info = (await http.get(links["self"])).json()
            assert (info["name"], info["status"]) == ("add", "SUCCESS")
            steps = (await http.get(links["steps"])).json()
            assert [(s["name"], s["output"]) for s in steps] == [("double", 40)]

            order = {"order_id": "o-1", "amount": 5}
            started = await http.post("/workflows/checkout", json=order)
            workflow_id = started.json()["workflow_id"]
            url = await http.get(
                f"/workflows/{workflow_id}/events/payment_url", params={"timeout": 10}
            )
            assert url.json()["value"] == "https://pay.example/o-1", url.text
            sent = await http.post(f"/workflows/{workflow_id}/messages/payment", json={"ok": True})
            assert sent.status_code < 300, sent.text
            result = await http.get(f"/workflows/{workflow_id}/result", params={"timeout": 10})
            assert result.json()["output"] == {"order_id": "o-1", "paid": {"ok": True}}
    finally:
        server.stop()
    assert transactions(pgbouncer, postgres_url) > 0


def saga_cli(*args: str, database_url: str) -> Result:
    """``saga args...`` (the Typer app ``saga`` runs) with the pooled settings in its
    environment. In this process: a subprocess would spend seconds importing, and the worker
    processes of the fleet test already run ``python -m orchestrator.cli`` through the pooler."""
    env = {**POOLED, "COLUMNS": "200", "ORCHESTRATOR_DATABASE_URL": database_url}
    return CliRunner().invoke(
        cli, list(args), env={**env, "ORCHESTRATOR_DIRECT_DATABASE_URL": None}
    )


async def test_cli_through_pgbouncer(
    pgbouncer: PgBouncer, pooled_url: str, postgres_url: str
) -> None:
    """`saga workflows list`, `get` and `cancel` on the pooler, configured by the
    environment alone (no direct URL: no LISTEN, no migration)."""
    settings = Settings(database_pooling="transaction")
    app = Orchestrator("cli", pooled_url, executor_id="pgb-cli", settings=settings)

    @app.step()
    async def add(x: int) -> int:
        return x + 1

    @app.workflow(name="adder")
    async def adder(x: int) -> int:
        return await add(x)

    @app.workflow(name="sleeper")
    async def sleeper() -> None:
        await app.sleep(3600)

    async with app:
        assert await (await app.start(adder, 1, workflow_id="cli-1")).result() == 2
        await app.start(sleeper, workflow_id="cli-2")
        # Each command runs its own event loop (asyncio.run): in a thread, beside this one.
        listed = await asyncio.to_thread(
            saga_cli, "workflows", "list", "--name", "adder", "--json", database_url=pooled_url
        )
        assert listed.exit_code == 0, listed.output
        rows = [(row["workflow_id"], row["status"]) for row in json.loads(listed.stdout)]
        assert rows == [("cli-1", "SUCCESS")]
        got = await asyncio.to_thread(
            saga_cli, "workflows", "get", "cli-1", "--json", database_url=pooled_url
        )
        assert got.exit_code == 0, got.output
        assert json.loads(got.stdout)["output"] == 2
        cancelled = await asyncio.to_thread(
            saga_cli, "workflows", "cancel", "cli-2", database_url=pooled_url
        )
        assert cancelled.exit_code == 0, cancelled.output
        assert (await app.retrieve("cli-2").status()).status is WorkflowStatus.CANCELLED
    assert transactions(pgbouncer, postgres_url) > 0


async def test_pooled_sessions_without_the_search_path_are_refused(
    pgbouncer: PgBouncer, postgres_url: str
) -> None:
    """The role has no search_path: launch names the ALTER ROLE that fixes it."""
    app = Orchestrator(
        "x", pgbouncer.pooled(postgres_url), settings=Settings(database_pooling="transaction")
    )
    with pytest.raises(
        ConfigurationError, match=r"ALTER ROLE \S+ IN DATABASE \S+ SET search_path = orchestrator"
    ):
        await app.launch()
    assert not app.launched


async def test_pending_migrations_without_a_direct_url_are_refused(
    pgbouncer: PgBouncer, empty_postgres_url: str
) -> None:
    """Migrations need a session lock: through the pooler alone, launch says what to do."""
    with psycopg.connect(empty_postgres_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA orchestrator")
    set_search_path(empty_postgres_url)
    pooled = pgbouncer.pooled(empty_postgres_url)
    app = Orchestrator("x", pooled, settings=Settings(database_pooling="transaction"))
    with pytest.raises(
        ConfigurationError, match=r"migration.* pending.*ORCHESTRATOR_DIRECT_DATABASE_URL"
    ):
        await app.launch()
    # With the direct URL they are applied (over it), and the app runs through the pooler.
    settings = Settings(database_pooling="transaction", direct_database_url=empty_postgres_url)
    app = Orchestrator("x", pooled, settings=settings)

    @app.workflow(name="one")
    async def one() -> int:
        return 1

    async with app:
        assert await (await app.start(one)).result(timeout=10) == 1


async def test_a_direct_url_to_another_database_is_refused(
    pgbouncer: PgBouncer, pooled_url: str, empty_postgres_url: str
) -> None:
    """LISTEN and migrations on another database than the pooler's: refused before either."""
    settings = Settings(database_pooling="transaction", direct_database_url=empty_postgres_url)
    app = Orchestrator("x", pooled_url, settings=settings)
    with pytest.raises(ConfigurationError, match="they must be one database"):
        await app.launch()
    with psycopg.connect(empty_postgres_url) as conn:  # nothing was migrated there
        assert conn.execute("SELECT to_regnamespace('orchestrator')").fetchone() == (None,)


def test_a_test_clock_cannot_go_through_a_pooler() -> None:
    """A FakeClock is a session setting, which a pooler would leak to other clients."""
    settings = Settings(database_pooling="transaction")
    with pytest.raises(ConfigurationError, match="transaction pooler"):
        Orchestrator("x", "postgresql://u@127.0.0.1:1/db", clock=FakeClock(), settings=settings)


def test_a_direct_url_must_be_postgresql() -> None:
    settings = Settings(database_pooling="transaction", direct_database_url="sqlite:///x.db")
    with pytest.raises(ConfigurationError, match=r"direct_database_url 'sqlite:///x\.db' is not"):
        Orchestrator("x", "postgresql://u@127.0.0.1:1/db", settings=settings)


def test_pooled_settings_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pooling mode that does not exist, or the pooler's URL given as the direct one."""
    monkeypatch.setenv("ORCHESTRATOR_DATABASE_POOLING", "statement")
    with pytest.raises(ConfigurationError, match="ORCHESTRATOR_DATABASE_POOLING"):
        Orchestrator("x", "postgresql://u@127.0.0.1:1/db")
    monkeypatch.setenv("ORCHESTRATOR_DATABASE_POOLING", "transaction")
    monkeypatch.setenv("ORCHESTRATOR_DIRECT_DATABASE_URL", "postgresql://u@127.0.0.1:1/db")
    with pytest.raises(ConfigurationError, match="give the server's own URL"):
        Orchestrator("x", "postgresql://u@127.0.0.1:1/db")
