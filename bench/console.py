"""The console's reads with 100,000 workflows in PostgreSQL (#18): p50/p95 per page.

    python -m bench.console [--workflows 100000] [--requests 200]

Fills a fresh database with ``--workflows`` sagas (five steps each, statuses spread as after
an outage: mostly SUCCESS, some COMPENSATED, ERROR, COMPENSATION_FAILED, PENDING; created over
30 days; one in 50 a child of another), serves it with ``saga``'s HTTP service in a process
of its own (uvicorn, one worker, an operator key), and times, from this process, what the
console asks for: the workflow list (first page, a status filter, a name filter, an id
prefix, page 100 through the keyset cursor), the counts per status, the inbox, the audit log,
the console's own page, and one saga's page (the workflow, its steps, rollback plan, audit and
children: the five calls the page makes at once). Prints p50 / p95 / max in milliseconds per
read. The aim (#18): p95 under 200 ms on the 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import psycopg

from bench.pgadmin import database_url, reset_database

ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://root@127.0.0.1:5432/root")
DATABASE = "bench_console"
KEY = "bench-console-key"
APP = "bench.console:build"

FILL = """
SET session_replication_role = replica;  -- the steps' fencing trigger: rows as a run left them
INSERT INTO orchestrator.workflows (
    workflow_id, name, status, input, output, error, executor_id, app_version,
    parent_workflow_id, created_at, updated_at, started_at, finished_at, trace_context
)
SELECT
    'order-' || lpad(i::text, 7, '0'),
    CASE WHEN i % 7 = 0 THEN 'refund' ELSE 'checkout' END,
    CASE
        WHEN i % 100 < 88 THEN 'SUCCESS'
        WHEN i % 100 < 93 THEN 'COMPENSATED'
        WHEN i % 100 < 96 THEN 'ERROR'
        WHEN i % 100 < 97 THEN 'COMPENSATION_FAILED'
        ELSE 'PENDING'
    END,
    '{"args":[{"sku":"book","quantity":2,"customer":{"email":"a@example.com"}}],"kwargs":{}}',
    CASE WHEN i % 100 < 88 THEN '{"order":"ok","total":50}' END,
    CASE WHEN i % 100 BETWEEN 93 AND 96
        THEN '{"type":"ConnectionError","message":"the payment provider is down"}' END,
    'worker-' || (i % 4), 'v1',
    CASE WHEN i % 50 = 0 AND i > 1 THEN 'order-' || lpad((i - 1)::text, 7, '0') END,
    {now} - ({n} - i)::bigint * 25920, {now} - ({n} - i)::bigint * 25920 + 900,
    {now} - ({n} - i)::bigint * 25920 + 10,
    CASE WHEN i % 100 < 97 THEN {now} - ({n} - i)::bigint * 25920 + 900 END,
    '00-' || md5(i::text) || '-' || substr(md5(i::text || 's'), 1, 16) || '-01'
FROM generate_series(1, {n}) AS i;
INSERT INTO orchestrator.steps (
    workflow_id, step_number, name, kind, output, error, attempts, compensation,
    compensation_input, started_at, finished_at
)
SELECT
    'order-' || lpad(i::text, 7, '0'), s,
    (ARRAY['reserve', 'charge', 'ship', 'notify', 'audit'])[s],
    'step', '{"ok":true,"payment_token":"tok_x"}', NULL, 1,
    CASE WHEN s <= 2 THEN (ARRAY['reserve', 'charge'])[s] || '.compensation' END,
    CASE WHEN s <= 2 THEN '{"args":[],"kwargs":{},"result":{"ok":true}}' END,
    {now} - ({n} - i)::bigint * 25920 + s * 100, {now} - ({n} - i)::bigint * 25920 + s * 100 + 80
FROM generate_series(1, {n}) AS i, generate_series(1, 5) AS s;
SET session_replication_role = origin;
ANALYZE orchestrator.workflows;
ANALYZE orchestrator.steps;
"""


def build() -> Any:
    """The served application (its workflows' code is not needed to read them)."""
    from orchestrator import Orchestrator

    return Orchestrator("bench-console", os.environ["DATABASE_URL"], executor_id="console-bench")


def fill(url: str, workflows: int) -> float:
    from orchestrator import Orchestrator

    async def migrate() -> None:
        app = Orchestrator("bench-console", url, executor_id="console-bench-migrate")
        await app.store.open()
        await app.store.close()

    asyncio.run(migrate())
    began = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        script = FILL.replace("{n}", str(int(workflows))).replace(
            "{now}", str(int(time.time() * 1000))
        )
        for statement in script.split(";\n"):
            if statement.strip():
                conn.execute(statement)  # type: ignore[call-overload]
    return time.perf_counter() - began


def serve(url: str, port: int) -> subprocess.Popen[bytes]:
    code = (
        "import uvicorn; from orchestrator.http import create_app; from bench.console import "
        f"build; uvicorn.run(create_app(build(), api_key={KEY!r}), host='127.0.0.1', "
        f"port={port}, log_level='warning')"
    )
    return subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "DATABASE_URL": url})


async def timed(call: Callable[[], Awaitable[None]], requests: int) -> tuple[float, float, float]:
    for _ in range(5):  # warm: connections, prepared plans
        await call()
    samples: list[float] = []
    for _ in range(requests):
        began = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - began) * 1000)
    samples.sort()
    p95 = samples[min(len(samples) - 1, int(len(samples) * 0.95))]
    return statistics.median(samples), p95, samples[-1]


async def measure(
    base: str, workflows: int, requests: int
) -> list[tuple[str, float, float, float]]:
    headers = {"Authorization": f"Bearer {KEY}"}
    rng = random.Random(18)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http:

        async def get(path: str, **params: Any) -> Any:
            response = await http.get(path, params=params)
            response.raise_for_status()
            return response.json()

        cursor_100: str | None = None
        page: dict[str, Any] = {"next_cursor": None}
        for _ in range(100):
            page = await get(
                "/workflows",
                limit=50,
                **({"cursor": page["next_cursor"]} if page["next_cursor"] else {}),
            )
        cursor_100 = page["next_cursor"]

        async def saga_page() -> None:
            workflow_id = f"order-{rng.randint(1, workflows):07d}"
            base_path = f"/workflows/{workflow_id}"
            await asyncio.gather(
                get(base_path),
                get(f"{base_path}/steps"),
                get(f"{base_path}/rollback-plan"),
                get(f"{base_path}/audit"),
                get("/workflows", parent_workflow_id=workflow_id, limit=50),
            )

        async def inbox() -> None:
            await asyncio.gather(
                get("/workflows", status="COMPENSATION_FAILED", limit=50),
                get("/workflows", status=["ERROR", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"], limit=50),
            )

        async def console_page() -> None:
            response = await http.get("/console/")
            if response.status_code not in (200, 404):
                response.raise_for_status()

        reads: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
            ("list: first page (50)", lambda: get("/workflows", limit=50)),
            ("list: status=ERROR", lambda: get("/workflows", status="ERROR", limit=50)),
            ("list: name=refund", lambda: get("/workflows", name="refund", limit=50)),
            (
                "list: id prefix",
                lambda: get("/workflows", id_prefix=f"order-00{rng.randint(10, 99)}", limit=50),
            ),
            ("list: page 101 (cursor)", lambda: get("/workflows", limit=50, cursor=cursor_100)),
            ("counts per status", lambda: get("/admin/workflow-counts")),
            ("inbox (2 lists)", inbox),
            ("audit log", lambda: get("/admin/audit", limit=50)),
            ("saga page (5 calls)", saga_page),
            ("console HTML", console_page),
        ]
        results = []
        for label, call in reads:
            p50, p95, worst = await timed(call, requests)  # type: ignore[arg-type]
            results.append((label, p50, p95, worst))
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workflows", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--port", type=int, default=18_018)
    args = parser.parse_args()
    reset_database(ADMIN_URL, DATABASE)
    url = database_url(ADMIN_URL, DATABASE)
    seconds = fill(url, args.workflows)
    print(
        f"filled {args.workflows:,} workflows and {args.workflows * 5:,} steps in {seconds:.1f} s"
    )
    server = serve(url, args.port)
    base = f"http://127.0.0.1:{args.port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the service did not become ready")
            time.sleep(0.2)
        results = asyncio.run(measure(base, args.workflows, args.requests))
    finally:
        server.terminate()
        server.wait(timeout=15)
    print(f"\nconsole reads, {args.requests} each, sequential ({args.workflows:,} workflows)")
    print(f"{'read':<28}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}")
    for label, p50, p95, worst in results:
        print(f"{label:<28}{p50:>9.1f}{p95:>9.1f}{worst:>9.1f}")
    over = [label for label, _, p95, _ in results if p95 > 200]
    print("\naim p95 < 200 ms: " + ("met by every read" if not over else f"missed by {over}"))


if __name__ == "__main__":
    main()
