"""`make bench` keeps working: a quick run of every family, ours only, as a subprocess.

The figures are not judged here (no timed assertions): the benchmark must run, measure every
family without an error, and report the checkpoint statement beside the per-step overhead.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from bench.workloads import FAMILIES
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
