"""`make bench` keeps working: a quick run of every family, ours only, as a subprocess.

The figures are not judged here (no timed assertions): the benchmark must run, measure every
family without an error, and report the checkpoint statement beside the per-step overhead. And
the harness's "N in flight" does what it says.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from bench.workloads import FAMILIES, bounded
from tests.conftest import ADMIN_URL, SKIP_POSTGRES, drop_database
from tests.processes import ROOT

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(SKIP_POSTGRES, reason="PostgreSQL tests disabled"),
]


def test_the_quick_benchmark_measures_every_family(tmp_path: Path) -> None:
    prefix = f"bench_t{uuid.uuid4().hex[:8]}"
    out = tmp_path / "quick.json"
    argv = [sys.executable, "-m", "bench", "--quick", "--no-dbos", "--json", str(out)]
    try:
        completed = subprocess.run(
            [*argv, "--database-url", ADMIN_URL, "--database-prefix", prefix],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
    finally:
        for suffix in ("orch", "dbos"):
            drop_database(f"{prefix}_{suffix}")
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert "a step among others, above that statement" in completed.stdout
    results = json.loads(out.read_text())["results"]
    assert list(results) == list(FAMILIES)
    for family, outcomes in results.items():
        assert "metrics" in outcomes["ours"], (family, outcomes["ours"])
        assert outcomes["dbos"] == {"skipped": "--no-dbos"}
    latency = results["latency"]["ours"]["metrics"]
    assert latency["checkpoint_statement_ms"] > 0
    assert latency["per_step_above_statement_ms"] == pytest.approx(
        latency["marginal_step_ms"] - latency["checkpoint_statement_ms"]
    )
    assert results["parked"]["ours"]["metrics"]["workflows"] == 1000


def run_on_throwaway_database(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m module args... --database <a fresh name>`` against the test server, the
    database dropped afterwards; the benchmark must exit 0 (its stderr shown otherwise)."""
    database = f"bench_{uuid.uuid4().hex[:8]}"
    try:
        completed = subprocess.run(
            [sys.executable, "-m", module, *args, "--database", database],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
            env={**os.environ, "TEST_DATABASE_URL": ADMIN_URL},
        )
    finally:
        drop_database(database)
    assert completed.returncode == 0, completed.stderr[-4000:]
    return completed


def test_the_statement_costs_run_against_the_store_s_own_statements() -> None:
    """bench.statement_costs runs the store's deliver, final-status and combined statements by name
    from queries.sql: a renamed statement or parameter breaks it here, not in a later
    investigation. Every row it prints carries a measured figure."""
    completed = run_on_throwaway_database(
        "bench.statement_costs", "--workflows", "300", "--batch", "50", "--round-trips", "50"
    )
    rows = [line for line in completed.stdout.splitlines() if line.endswith(tuple("0123456789"))]
    labels = [row[:58].strip() for row in rows]
    assert labels == [
        "deliver (message + recv step)",
        "without steps_fence and the foreign keys",
        "finish (final status)",
        "without the status NOTIFY trigger",
        "recv step + final status (a wake since 8196ca6)",
        "without steps_fence and the foreign keys",
        "plain INSERT of step rows",
        "without steps_fence and the foreign keys",
        "SELECT 1 (one round trip)",
        "one-row INSERT, autocommit (a round trip and a commit)",
    ]
    for row in rows:
        cpu_us, wall_us = (float(figure) for figure in row[58:].split())
        assert cpu_us >= 0 and wall_us > 0, row


async def test_bounded_calls_each_item_once_in_order_with_at_most_window_awaiting() -> None:
    """The benchmarks' "N in flight": every item called exactly once, the results in the items'
    order whatever order the calls finish in, never more than ``window`` awaiting at once, and
    the window filled (the harness must not serialise what it claims to run concurrently)."""
    awaiting = peak = 0
    called: list[int] = []

    async def call(item: int) -> int:
        nonlocal awaiting, peak
        called.append(item)
        awaiting += 1
        peak = max(peak, awaiting)
        await asyncio.sleep(0.001 * (item % 3))  # finishing out of order
        awaiting -= 1
        return item * 10

    results = await bounded(7, range(100), call)
    assert results == [item * 10 for item in range(100)]
    assert sorted(called) == list(range(100))
    assert peak == 7
    assert await bounded(50, range(3), call) == [0, 10, 20]
    assert await bounded(4, [], call) == []


def test_the_wake_storm_runs_both_phases_and_the_store_s_writes(tmp_path: Path) -> None:
    """bench.wake_storm parks and wakes through the engine, then times the store's writes
    alone, the handed wake's combined statement among them: every figure is measured."""
    out = tmp_path / "wake_storm.json"
    run_on_throwaway_database(
        "bench.wake_storm", "--parked", "200", "--window", "20", "--json", str(out)
    )
    document = json.loads(out.read_text())
    (round_,) = document["rounds"]
    for phase in (round_["park"], round_["wake"]):
        assert phase["seconds"] > 0 and phase["cpu_us"] > 0, phase
    writes = [phase["name"] for phase in document["store_writes"]]
    assert writes == ["create", "step", "send", "recv", "finish", "create", "handed"]
    assert all(phase["rows_per_statement"] >= 1 for phase in document["store_writes"])


def test_the_wake_storm_without_final_writes_leaves_them_out_of_the_database(
    tmp_path: Path,
) -> None:
    """--no-final-write answers the wake's final writes in the process: the wake then writes
    (almost) no WAL, where a real one writes over a kilobyte per workflow. (The instrument that
    separates the engine's Python from the database's part; a patch that missed the store's
    writer would measure the real wake under the wrong label.)"""
    out = tmp_path / "wake_storm.json"
    run_on_throwaway_database(
        "bench.wake_storm", "--parked", "300", "--window", "20", "--no-store-writes",
        "--no-final-write", "--json", str(out),
    )  # fmt: skip
    document = json.loads(out.read_text())
    assert document["final_write"] is False
    (round_,) = document["rounds"]
    assert round_["park"]["wal_bytes"] > 500, round_["park"]
    assert round_["wake"]["wal_bytes"] < 100, round_["wake"]
    assert round_["wake"]["cpu_us"] > 0


def test_the_asyncio_floor_runs_both_ways_of_awaiting_results() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "bench.asyncio_floor", "--workflows", "2000", "--rounds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    rows = {line[:24].strip(): line[24:].split() for line in completed.stdout.splitlines()[2:]}
    assert list(rows) == ["a task per result", "the workflows' tasks"]
    for figures in rows.values():
        assert len(figures) == 4 and all(float(figure) > 0 for figure in figures), figures
