"""Sagas survive the loss of their primary: the replica is promoted, the workers (on a
multi-host URL) carry on there; nothing acknowledged is lost, every effect happens once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.failover.harness import run_failover
from tests.failover.replica import tools_missing

pytestmark = [pytest.mark.recovery, pytest.mark.postgres, pytest.mark.slow]


def test_sagas_survive_failover_to_the_promoted_replica(tmp_path: Path) -> None:
    reason = tools_missing()
    if reason is not None:
        pytest.skip(f"no private PostgreSQL clusters: {reason}")
    seed = int(os.environ.get("FAILOVER_SEED") or int.from_bytes(os.urandom(2), "big"))
    report = run_failover(tmp_path, sagas=10, workers=2, down_seconds=0.5, seed=seed)
    print(f"seed {seed}: {dict(report.statuses)} {report.figures}")
    assert not report.violations, f"seed {seed}: " + "\n".join(report.violations[:40])
    assert sum(report.statuses.values()) == 10
    assert report.checked_acknowledged > 0  # the check compared something
