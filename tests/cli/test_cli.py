"""`saga` commands as real subprocesses against a real database."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import typer

from orchestrator import Orchestrator, StartOptions
from orchestrator.cli.messages import send_to_key
from orchestrator.cli.stack import free_port

ROOT = Path(__file__).resolve().parents[2]


def saga(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


async def test_migrate_list_get_steps_and_cancel(database_url: str) -> None:
    migrated = saga("migrate", "--database-url", database_url)
    assert migrated.returncode == 0, migrated.stderr
    assert "migration" in migrated.stdout

    app = Orchestrator("cli", database_url, executor_id="cli-test")

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

        listed = saga("workflows", "list", "--json", "--database-url", database_url)
        assert listed.returncode == 0, listed.stderr
        rows = {row["workflow_id"]: row for row in json.loads(listed.stdout)}
        assert rows["cli-1"]["status"] == "SUCCESS" and rows["cli-2"]["status"] == "PENDING"

        got = saga("workflows", "get", "cli-1", "--json", "--database-url", database_url)
        assert json.loads(got.stdout)["output"] == 2

        steps = saga("workflows", "steps", "cli-1", "--database-url", database_url)
        assert steps.returncode == 0 and "add" in steps.stdout and "SUCCESS" in steps.stdout

        cancelled = saga("workflows", "cancel", "cli-2", "--database-url", database_url)
        assert cancelled.returncode == 0, cancelled.stderr
        assert (await app.retrieve("cli-2").status()).status == "CANCELLED"

        missing = saga("workflows", "get", "nope", "--database-url", database_url)
        assert missing.returncode == 1
        assert "workflow_not_found" in missing.stderr and "Traceback" not in missing.stderr

        stats = saga("queues", "--json", "--database-url", database_url)
        assert stats.returncode == 0 and json.loads(stats.stdout) == []
        listed_schedules = saga("schedules", "--database-url", database_url)
        assert listed_schedules.returncode == 0, listed_schedules.stderr


def test_up_refuses_a_public_interface_without_an_api_key() -> None:
    refused = saga("up", "sagas.demo:app", "--host", "0.0.0.0", "--port", "8999")
    assert refused.returncode == 1
    assert "api_key" in refused.stderr and "Traceback" not in refused.stderr
    bad = saga("worker", "no_such_module:app")
    assert bad.returncode == 2 and "cannot import" in bad.stderr


async def test_resume_and_fork_run_the_workflow_with_the_app_code(
    database_url: str, tmp_path: Path
) -> None:
    flag = tmp_path / "flag"
    env = {"DATABASE_URL": database_url, "CLI_FLAG": str(flag)}
    os.environ.update(env)
    try:
        from tests.cli import cli_app

        cli_app = importlib.reload(cli_app)  # built on this test's database
        async with cli_app.app:
            handle = await cli_app.app.start(cli_app.two_steps, 1, workflow_id="cli-r")
            with pytest.raises(Exception, match="flag missing"):
                await handle.result()
        flag.touch()
        resumed = saga("workflows", "resume", "cli-r", "--app", "tests.cli.cli_app:app")
        assert resumed.returncode == 0, resumed.stderr
        assert "succeeded: 20" in resumed.stdout
        forked = saga(
            "workflows",
            "fork",
            "cli-r",
            "--app",
            "tests.cli.cli_app:app",
            "--from-step",
            "2",
            "--new-id",
            "cli-f",
        )
        assert forked.returncode == 0, forked.stderr
        assert "workflow cli-f running" in forked.stdout and "succeeded: 20" in forked.stdout
    finally:
        for key in env:
            os.environ.pop(key, None)


async def test_messages_sent_from_the_cli_by_the_app_here(tmp_path: Path) -> None:
    """SQLite only (one subprocess: the store is the app's business): --url is covered by the
    service test below, the client's sends in tests/http/test_messages_by_key.py."""
    database_url = f"sqlite:///{tmp_path}/messages.db"
    app = Orchestrator("cli-messages", database_url, executor_id="cli-messages")

    @app.workflow(name="drain")
    async def drain() -> list[object]:
        got: list[object] = []
        while (message := await app.recv("paid", timeout=0)) is not None:
            got.append(message)
        return got

    env = {"DATABASE_URL": database_url}
    os.environ.update(env)
    try:
        here = ("--app", "tests.cli.cli_app:app")
        kept = saga("messages", "send-to-key", "order_id:7", "paid", '{"n": 1}', *here, "--json")
        assert kept.returncode == 0, kept.stderr
        answer = json.loads(kept.stdout)
        assert answer["delivered"] is False and answer["expires_at"] and not answer["repeat"]
        with pytest.raises(typer.BadParameter, match="must be JSON"):  # refused before sending
            send_to_key("order_id:7", "paid", "{not json", app_path="tests.cli.cli_app:app")
        async with app:
            options = StartOptions(workflow_id="m-7", attributes={"order_id": "7"})
            held = await app.start_with(drain, (), {}, options)
            assert await held.result(timeout=10) == [{"n": 1}]
    finally:
        for key in env:
            os.environ.pop(key, None)


@pytest.mark.postgres
def test_commands_against_a_running_service_with_url(postgres_url: str, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DATABASE_URL": postgres_url, "CLI_FLAG": str(flag)}
    command = ["up", "tests.cli.cli_app:app", "--port", str(port), "--api-key", "k-1"]
    server = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", *command],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    auth = {"Authorization": "Bearer k-1"}
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
            headers={**auth, "Idempotency-Key": "url-1"},
            params={"wait_for_event": "never", "timeout": 1},
        )
        assert started.status_code == 202, started.text

        def remote(*args: str) -> subprocess.CompletedProcess[str]:
            return saga(*args, "--url", base, "--api-key", "k-1")

        failed = json.loads(remote("workflows", "get", "url-1", "--json").stdout)
        assert failed["status"] == "ERROR" and "flag missing" in failed["error"]
        listed = json.loads(remote("workflows", "list", "--json", "--status", "ERROR").stdout)
        assert [row["workflow_id"] for row in listed] == ["url-1"]
        steps = remote("workflows", "steps", "url-1")
        assert steps.returncode == 0 and "count" in steps.stdout and "flaky" in steps.stdout

        flag.touch()
        resumed = remote("workflows", "resume", "url-1")
        assert resumed.returncode == 0 and "url-1" in resumed.stdout, resumed.stderr
        result = httpx.get(f"{base}/workflows/url-1/result", params={"timeout": 10}, headers=auth)
        assert result.json() == {"status": "SUCCESS", "output": 20}
        forked = remote("workflows", "fork", "url-1", "--from-step", "2", "--new-id", "url-2")
        assert forked.returncode == 0 and "url-2" in forked.stdout, forked.stderr
        kept = remote("messages", "send-to-key", "order_id:1", "paid", "1")
        assert kept.returncode == 0 and "kept until" in kept.stdout, kept.stderr
        assert remote("queues", "--json").returncode == 0
        assert remote("schedules").returncode == 0

        missing = remote("workflows", "cancel", "nope")
        assert missing.returncode == 1 and "workflow_not_found" in missing.stderr
        wrong_key = saga("workflows", "list", "--url", base, "--api-key", "wrong")
        assert wrong_key.returncode == 1 and "unauthorized" in wrong_key.stderr
        both = saga("workflows", "resume", "url-1", "--url", base, "--app", "x:y")
        assert both.returncode == 2 and "either --app" in both.stderr
    finally:
        server.terminate()
        server.wait(timeout=20)
    down = saga("workflows", "list", "--url", base)
    assert down.returncode == 1 and "cannot reach the service" in down.stderr
    assert "Traceback" not in down.stderr


@pytest.mark.parametrize(
    "url",
    [
        "host=127.0.0.1 port=5432 user=root password=hunter2secret dbname=x",
        "postgresql://root:hunter2secret@127.0.0.1:notaport/x",
        "postgresql://root:hunter2secret@127.0.0.1:5432/x?sslmode=nonsense",
        "mysql://root:hunter2secret@127.0.0.1/x",
    ],
    ids=["keyword-dsn", "malformed-port", "bad-option", "unsupported"],
)
def test_a_bad_database_url_is_reported_at_once_without_its_password(url: str) -> None:
    began = time.monotonic()
    answer = saga("workflows", "list", "--database-url", url)
    assert answer.returncode == 1
    assert time.monotonic() - began < 30  # not retried: retrying cannot fix it
    output = answer.stdout + answer.stderr
    assert "hunter2secret" not in output, output
    assert "error" in output.lower(), output
    assert "Traceback" not in output, output


def test_an_unreachable_database_is_retried_without_printing_its_password() -> None:
    url = "postgresql://root:hunter2secret@127.0.0.1:1/x?connect_timeout=1"
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "workflows", "list", "--database-url", url],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    # Read until it says it retries (start-up is slow on a loaded machine), then stop it.
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")))
    reader.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "retrying" not in "".join(lines):
        if process.poll() is not None:
            break
        time.sleep(0.1)
    process.kill()
    process.wait()
    reader.join(10)
    output = "".join(lines)
    assert "retrying" in output, output  # it is waiting for the database to come back
    assert "hunter2secret" not in output, output


async def test_operator_actions_from_the_cli(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    down = tmp_path / "refund-down"
    down.touch()
    monkeypatch.setenv("REFUND_DOWN", str(down))
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("ORCHESTRATOR_ACTOR", "erin")
    from tests.cli.ops_app import define

    app = Orchestrator("cli-ops", database_url, executor_id="cli-ops-test", app_version="ops")
    order = define(app)
    where = ("--database-url", database_url, "--app-name", "cli-ops")
    async with app:
        failed = await app.start(order, 10, workflow_id="ops-1")
        with pytest.raises(Exception, match="COMPENSATION_FAILED"):
            await failed.result()
        for i in range(3):
            await app.start(order, i, False, workflow_id=f"ops-run-{i}")
    no_reason = saga("workflows", "skip-compensation", "ops-1", "--step", "1", "--app", "x:y")
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr
    skipped = saga(
        "workflows", "skip-compensation", "ops-1", "--step", "1",
        "--reason", "refunded by hand", "--app", "tests.cli.ops_app:app",
    )  # fmt: skip
    assert skipped.returncode == 0, skipped.stderr + skipped.stdout
    assert "COMPENSATED" in skipped.stdout
    dry = saga("workflows", "bulk-cancel", "--id-prefix", "ops-run-", "--dry-run", *where)
    assert dry.returncode == 0, dry.stderr
    assert "would act on 3 workflows" in dry.stdout
    acted = saga("workflows", "bulk-cancel", "--id-prefix", "ops-run-", "--reason", "drill", *where)
    assert acted.returncode == 0 and "3 done, 0 failed" in acted.stdout, acted.stdout
    needs_code = saga("workflows", "bulk-resume", "--id-prefix", "ops-run-", *where)
    assert needs_code.returncode == 2 and "--app" in needs_code.stderr
    audit = saga("workflows", "audit", "--json", *where)
    entries = json.loads(audit.stdout)
    assert {(e["action"], e["actor"], e["surface"]) for e in entries} >= {
        ("skip_compensation", "erin", "cli"),
        ("bulk_cancel", "erin", "cli"),
        ("cancel", "erin", "cli"),
    }
    assert next(e for e in entries if e["action"] == "skip_compensation")["reason"] == (
        "refunded by hand"
    )
