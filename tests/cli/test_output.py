"""What `saga workflows list|get` print: the demo's data found by default, where they looked,
input as JSON, and one time format whether they read the database or a service (--url)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from orchestrator import Orchestrator
from orchestrator.cli.common import format_time
from orchestrator.cli.stack import free_port
from tests.cli.test_cli import ROOT


def saga(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**(env or _clean_env()), "COLUMNS": "250"},
    )


def _clean_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "ORCHESTRATOR_", "SHOP_"))
    }


def _fields(output: str) -> dict[str, str]:
    """`saga workflows get`'s lines: ``{key:>20}  {value}``."""
    return {line[:20].strip(): line[22:] for line in output.splitlines()}


def _app(database_url: str, name: str) -> Orchestrator:
    app = Orchestrator(name, database_url, executor_id="output-test", app_version="output-test")

    @app.workflow(name="checkout")
    async def checkout(order: dict[str, object]) -> str:
        return "ok"

    return app


@pytest.mark.sqlite
async def test_list_and_get_find_the_demo_app_and_say_where(tmp_path: Path) -> None:
    env = {**_clean_env(), "ORCHESTRATOR_DATA_DIR": str(tmp_path)}
    nothing = saga("workflows", "list", env=env)
    assert nothing.returncode == 1 and f"no embedded database under {tmp_path}/" in nothing.stderr
    assert not any(os.scandir(tmp_path))  # reading created nothing
    shop = _app(f"sqlite:///{tmp_path / 'shop.db'}", "shop")  # what `make demo` writes
    order = {"order_id": "order-1", "items": [{"sku": "mug", "quantity": 2}], "note": "[b]x"}
    async with shop:
        handle = await shop.start("checkout", order, workflow_id="order-1")
        assert await handle.result() == "ok"

    listed = saga("workflows", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "order-1" in listed.stdout
    assert f"1 row(s) from sqlite:///{tmp_path}/shop.db (app shop)" in listed.stdout

    got = saga("workflows", "get", "order-1", env=env)
    assert got.returncode == 0, got.stderr
    fields = _fields(got.stdout)
    assert json.loads(fields["input"]) == {"args": [order], "kwargs": {}}  # JSON, not a repr
    assert fields["output"] == '"ok"'
    assert fields["created_at"].endswith("Z") and len(fields["created_at"]) == 24

    missing = saga("workflows", "get", "order-404", env=env)
    assert missing.returncode == 1
    assert missing.stderr.count("\n") == 1, missing.stderr
    assert "no workflow with id 'order-404'" in missing.stderr
    assert f"looked in sqlite:///{tmp_path}/shop.db (app shop)" in missing.stderr

    other = _app(f"sqlite:///{tmp_path / 'quickstart.db'}", "quickstart")
    async with other:
        await (await other.start("checkout", {}, workflow_id="qs-1")).result()
    ambiguous = saga("workflows", "list", env=env)
    assert ambiguous.returncode == 1
    assert "several apps (quickstart, shop): choose one with --app-name" in ambiguous.stderr
    chosen = saga("workflows", "list", "--app-name", "quickstart", "--json", env=env)
    assert [row["workflow_id"] for row in json.loads(chosen.stdout)] == ["qs-1"]


@pytest.mark.postgres
def test_not_found_names_the_database_without_its_password(postgres_url: str) -> None:
    url = postgres_url.replace("://root@", "://root:hunter2secret@")
    assert "hunter2secret" in url  # trust auth: any password is accepted
    missing = saga("workflows", "get", "nope", "--database-url", url, "--schema", "orchestrator")
    assert missing.returncode == 1
    assert "hunter2secret" not in missing.stderr
    assert "looked in postgresql://root:***@" in missing.stderr
    assert "(schema orchestrator)" in missing.stderr


def test_times_have_one_format_from_a_datetime_and_from_iso_text() -> None:
    from datetime import UTC, datetime

    when = datetime(2024, 5, 6, 7, 8, 9, 120000, tzinfo=UTC)
    assert format_time(when) == "2024-05-06T07:08:09.120Z"
    assert format_time("2024-05-06T07:08:09.120000Z") == "2024-05-06T07:08:09.120Z"
    assert format_time(when.isoformat()) == format_time(when)


@pytest.mark.postgres
def test_get_and_list_print_the_same_with_and_without_url(postgres_url: str) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**_clean_env(), "DATABASE_URL": postgres_url, "CLI_FLAG": "/nonexistent"}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orchestrator.cli",
            "up",
            "tests.cli.cli_app:app",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "saga up did not start"
            time.sleep(0.1)
        started = httpx.post(
            f"{base}/workflows/two_steps",
            json={"x": 1},
            headers={"Idempotency-Key": "same-1", "content-type": "application/json"},
            params={"wait_for_event": "never", "timeout": 10},
        )
        assert started.status_code in (200, 202), started.text
        httpx.get(f"{base}/workflows/same-1/result", params={"timeout": 10})
        local = saga("workflows", "get", "same-1", env=env)
        remote = saga("workflows", "get", "same-1", "--url", base, env=env)
        local_list = saga("workflows", "list", "--json", env=env)
        remote_list = saga("workflows", "list", "--json", "--url", base, env=env)
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert local.returncode == remote.returncode == 0, local.stderr + remote.stderr

    mine, theirs = _fields(local.stdout), _fields(remote.stdout)
    for key in ("workflow_id", "status", "input", "created_at", "updated_at", "finished_at"):
        assert mine[key] == theirs[key], (key, mine[key], theirs[key])
    assert json.loads(mine["input"]) == {"args": [1], "kwargs": {}}
    rows = {r["workflow_id"]: r for r in json.loads(local_list.stdout)}
    remote_rows = {r["workflow_id"]: r for r in json.loads(remote_list.stdout)}
    assert rows["same-1"]["created_at"] == remote_rows["same-1"]["created_at"]
    assert rows["same-1"]["created_at"] == mine["created_at"].strip()
