"""What PgBouncer costs: the same workloads on a direct connection and through a private
PgBouncer in transaction pooling mode (one more hop, no prepared statements), in alternating
rounds so the machine's drift hits both.

    .venv/bin/python -m bench.pgbouncer [--rounds 3] [--workflows 1000] [--steps 5]

Needs the pgbouncer binary (``apt-get install pgbouncer``). Prints, per mode, the median over
the rounds of: one workflow's latency run alone (p50, ms) and the throughput of many at once
(workflows/s). The pooled app has its direct URL (LISTEN and migrations go direct, as
docs/operations.md#pgbouncer advises).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from bench.pgadmin import database_url, reset_database
from orchestrator import Orchestrator
from orchestrator.config import Settings
from orchestrator.store import PostgresStore
from tests.pgbouncer import PgBouncer, set_search_path

DEFAULT_ADMIN_URL = "postgresql://root@127.0.0.1:5432/root"
DATABASE = "bench_pgbouncer"
LATENCY_RUNS = 50  # workflows run one after the other for the latency figure
INFLIGHT = 200  # workflows in flight at once for the throughput figure


def build(url: str, settings: Settings, steps: int) -> Orchestrator:
    """An app whose one workflow runs ``steps`` trivial steps."""
    app = Orchestrator("bench", url, executor_id="bench", app_version="bench", settings=settings)

    @app.step()
    async def step(x: int) -> int:
        return x

    @app.workflow(name="steps")
    async def workflow(x: int) -> int:
        for _ in range(steps):
            x = await step(x)
        return x

    return app


async def measure(url: str, settings: Settings, steps: int, workflows: int) -> dict[str, float]:
    app = build(url, settings, steps)
    async with app:
        for x in range(10):  # warm the pool and the caches
            await (await app.start("steps", x)).result()
        latencies = []
        for x in range(LATENCY_RUNS):
            began = time.perf_counter()
            await (await app.start("steps", x)).result()
            latencies.append(time.perf_counter() - began)
        slots = asyncio.Semaphore(INFLIGHT)

        async def one(x: int) -> None:
            async with slots:
                await (await app.start("steps", x)).result()

        began = time.perf_counter()
        await asyncio.gather(*(one(x) for x in range(workflows)))
        elapsed = time.perf_counter() - began
    return {
        "latency_p50_ms": statistics.median(latencies) * 1000,
        "throughput_wf_s": workflows / elapsed,
    }


async def main(admin_url: str, rounds: int, workflows: int, steps: int) -> None:
    direct = database_url(admin_url, DATABASE)
    reset_database(admin_url, DATABASE)
    store = PostgresStore(direct)  # migrate once, then the role's search_path for the pooler
    await store.open()
    await store.close()
    set_search_path(direct)
    bouncer = PgBouncer(admin_url)
    bouncer.start()
    modes = {
        "direct": (direct, Settings(database_pooling="session")),
        "pgbouncer": (
            bouncer.pooled(direct),
            Settings(database_pooling="transaction", direct_database_url=direct),
        ),
    }
    results: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
    try:
        for number in range(1, rounds + 1):
            for mode, (url, settings) in modes.items():
                figures = await measure(url, settings, steps, workflows)
                results[mode].append(figures)
                shown = ", ".join(f"{name} {value:.1f}" for name, value in figures.items())
                print(f"round {number} {mode:9}: {shown}", flush=True)
    finally:
        bouncer.stop()
        reset_database(admin_url, DATABASE)
    print(f"\nmedian of {rounds} rounds, {steps} steps per workflow, {workflows} workflows:")
    print(f"{'mode':10} {'latency p50 ms':>15} {'workflows/s':>12}")
    for mode, runs in results.items():
        latency = statistics.median(run["latency_p50_ms"] for run in runs)
        rate = statistics.median(run["throughput_wf_s"] for run in runs)
        print(f"{mode:10} {latency:15.2f} {rate:12.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_ADMIN_URL, help="admin URL")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per mode")
    parser.add_argument("--workflows", type=int, default=1000, help="for the throughput")
    parser.add_argument("--steps", type=int, default=5, help="steps per workflow")
    options = parser.parse_args()
    asyncio.run(main(options.database_url, options.rounds, options.workflows, options.steps))
