"""The short chaos run of `make test` (about a minute): three workers under SIGKILL, SIGSTOP
past their lease, SIGTERM, pg_terminate_backend and a restart of their PostgreSQL, while
checkout sagas run; the checker must find no violation. The seed is printed (CHAOS_SEED sets
it); `make chaos` is the long run."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.chaos import cluster
from tests.processes import ROOT

pytestmark = [pytest.mark.recovery, pytest.mark.slow]


def test_a_short_chaos_run_breaks_no_promise(tmp_path: os.PathLike[str]) -> None:
    reason = cluster.available()
    if reason is not None:
        pytest.skip(f"no private PostgreSQL cluster: {reason}")
    seed = os.environ.get("CHAOS_SEED") or str(int.from_bytes(os.urandom(3), "big"))
    command = [sys.executable, "-m", "tests.chaos", "--seed", seed, "--sagas", "80"]
    command += ["--kills", "0", "--seconds", "35", "--work-dir", str(tmp_path)]
    done = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    print(done.stdout[-6000:])
    assert done.returncode == 0, f"seed {seed}\n{done.stdout[-8000:]}\n{done.stderr[-4000:]}"
    assert "passed: every saga ended" in done.stdout
