"""The pytest plugin (entry point ``pytest11: orchestrator``): its fixtures in this suite, and
in a user's project run as a pytest subprocess (SQLite, and PostgreSQL with
--orchestrator-database-url); HTTP fakes recording a real saga's requests into the ledger."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import httpx
import psycopg
import pytest

from orchestrator import Orchestrator, Retry, WorkflowStatus, http_client
from orchestrator.testing import Application, Ledger, assert_replays
from orchestrator.testing.http_fakes import HttpFakes
from orchestrator.testing.plugin import AppFactory, Build

ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://root@127.0.0.1:5432/root")


def build(database_url: str) -> Orchestrator:
    """A checkout that charges over HTTP (the first attempt loses the answer: a retry sends the
    same Idempotency-Key) and sends an e-mail without a key."""
    app = Orchestrator("plugin", database_url, app_version="t")
    attempts: Counter[str] = Counter()

    @app.step(name="charge", retry=Retry(max_attempts=3, base_interval=0.01))
    async def charge(order_id: str) -> str:
        async with http_client(base_url="https://payments.test") as client:
            response = await client.post("/charges", json={"order": order_id})
        attempts[order_id] += 1
        if attempts[order_id] == 1:
            raise ConnectionError("the answer was lost")  # after the effect: retried
        return str(response.json()["id"])

    @app.step(name="notify")
    async def notify(order_id: str) -> None:
        async with http_client(base_url="https://mail.test", idempotency_key=False) as client:
            (await client.post("/emails", json={"order": order_id})).raise_for_status()

    @app.workflow(name="checkout")
    async def checkout(order_id: str) -> str:
        charged = await charge(order_id)
        await notify(order_id)
        return charged

    return app


@pytest.fixture
def orchestrator_build() -> Build:
    return build


async def test_orchestrator_app_runs_on_a_fresh_sqlite_database(
    orchestrator_app: Orchestrator, orchestrator_database_url: str, tmp_path: Path
) -> None:
    assert orchestrator_app.launched
    assert orchestrator_database_url == f"sqlite:///{tmp_path}/orchestrator.db"
    assert orchestrator_app.database == "sqlite"
    assert set(orchestrator_app.workflows) == {"checkout"}
    assert await orchestrator_app.list_workflows() == []


async def test_http_fakes_record_each_keyed_effect_once(
    orchestrator_app: Orchestrator, http_fakes: HttpFakes, ledger: Ledger
) -> None:
    charges = http_fakes.post("https://payments.test/charges")
    charges.respond(201, json={"id": "ch_1"})
    http_fakes.post("https://mail.test/emails").respond(202)

    handle = await orchestrator_app.start(
        orchestrator_app.workflows["checkout"], "o-1", workflow_id="order-1"
    )
    assert await handle.result(timeout=60) == "ch_1"

    assert charges.call_count == 2  # the step ran twice ...
    keys = {
        r.headers.get("Idempotency-Key") for r in http_fakes.requests if "charges" in str(r.url)
    }
    assert keys == {"order-1:1"}  # ... with the same key
    assert ledger.applied("POST /charges") == [Application("POST /charges", "order-1:1")]
    assert ledger.applied("POST /emails") == [Application("POST /emails", "")]  # no key
    assert ledger.counts() == Counter({("POST /charges", "order-1:1"): 1, ("POST /emails", ""): 1})
    assert ledger.applied(workflow_id="order-1") == ledger.applied("POST /charges")


async def test_http_fakes_leave_failed_requests_out_and_refuse_unrouted_ones(
    http_fakes: HttpFakes, ledger: Ledger
) -> None:
    http_fakes.post("https://payments.test/charges").respond(503)
    async with httpx.AsyncClient() as client:
        headers = {"Idempotency-Key": "k1"}
        answer = await client.post("https://payments.test/charges", headers=headers)
        assert answer.status_code == 503
        with pytest.raises(Exception, match="not mocked"):
            await client.get("https://elsewhere.test/")
    assert ledger.applications == []  # a 503 models a service that did not apply it
    assert [r.url.host for r in http_fakes.requests] == ["payments.test"]  # routed ones


async def test_the_factory_builds_two_releases_on_one_database(
    orchestrator_app_factory: AppFactory, http_fakes: HttpFakes
) -> None:
    http_fakes.post("https://payments.test/charges").respond(201, json={"id": "ch_2"})
    http_fakes.post("https://mail.test/emails").respond(202)
    first = orchestrator_app_factory(build)
    async with first:
        handle = await first.start(first.workflows["checkout"], "o-2", workflow_id="order-2")
        assert await handle.result(timeout=60) == "ch_2"
        history = await first.export_history("order-2")
    assert not first.launched
    assert history["workflow"]["status"] == WorkflowStatus.SUCCESS.value
    await assert_replays(history, orchestrator_app_factory(build))  # not launched


# ---------------------------------------------------------------- a user's project


USER_CONFTEST = """
from __future__ import annotations

import pytest

from orchestrator import Orchestrator


def build(database_url: str) -> Orchestrator:
    app = Orchestrator("shop", database_url, app_version="v1")

    @app.step(name="add")
    async def add(x: int) -> int:
        return x + 1

    @app.workflow(name="adder")
    async def adder(x: int) -> int:
        return await add(x)

    return app


@pytest.fixture
def orchestrator_build():
    return build
"""

USER_TESTS = """
from __future__ import annotations

import os
from pathlib import Path


async def test_runs_a_workflow(orchestrator_app, orchestrator_database_url):
    Path(os.environ["URLS_FILE"]).open("a").write(orchestrator_database_url + "\\n")
    handle = await orchestrator_app.start(orchestrator_app.workflows["adder"], 1)
    assert await handle.result(timeout=60) == 2
    assert len(await orchestrator_app.list_workflows()) == 1


async def test_each_test_has_its_own_database(orchestrator_app, orchestrator_database_url):
    Path(os.environ["URLS_FILE"]).open("a").write(orchestrator_database_url + "\\n")
    assert await orchestrator_app.list_workflows() == []


def test_a_test_without_fixtures_is_untouched():
    assert True
"""


def run_user_project(
    tmp_path: Path, *args: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    project = tmp_path / "project"
    project.mkdir()
    (project / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    (project / "conftest.py").write_text(textwrap.dedent(USER_CONFTEST))
    (project / "test_shop.py").write_text(textwrap.dedent(USER_TESTS))
    urls = tmp_path / "urls.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**env, "URLS_FILE": str(urls)},
    )
    return result, urls.read_text().split() if urls.exists() else []


def test_a_users_project_gets_the_fixtures_on_sqlite(tmp_path: Path) -> None:
    result, urls = run_user_project(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
    assert len(urls) == 2 and len(set(urls)) == 2
    assert all(url.startswith("sqlite:///") for url in urls)


@pytest.mark.postgres
def test_a_users_project_gets_a_postgres_database_per_test(tmp_path: Path) -> None:
    if os.environ.get("ORCH_TEST_SKIP_POSTGRES") == "1":
        pytest.skip("PostgreSQL tests disabled (ORCH_TEST_SKIP_POSTGRES=1)")
    result, urls = run_user_project(tmp_path, "--orchestrator-database-url", ADMIN_URL)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(urls) == 2 and len(set(urls)) == 2
    assert all(url.startswith("postgresql://") for url in urls)
    names = [url.rsplit("/", 1)[1] for url in urls]
    with psycopg.connect(ADMIN_URL) as connection:
        rows = connection.execute(
            "SELECT datname FROM pg_database WHERE datname = ANY(%s)", (names,)
        ).fetchall()
    assert rows == []  # dropped after each test


def test_orchestrator_app_without_a_build_says_what_to_define(tmp_path: Path) -> None:
    project = tmp_path / "bare"
    project.mkdir()
    (project / "pytest.ini").write_text("[pytest]\nasyncio_mode = auto\n")
    (project / "test_bare.py").write_text("async def test_app(orchestrator_app):\n    pass\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "define a fixture named orchestrator_build" in result.stdout + result.stderr
