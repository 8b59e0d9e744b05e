"""Failover to a replica: how long sagas stop when their primary dies and its synchronous
replica is promoted (issue #21 item 4).

    python -m bench.failover                      # 3 rounds of 40 sagas, 2 workers
    python -m bench.failover --rounds 5 --sagas 80 --down 2

Each round makes a primary and a streaming replica (private clusters, tests/failover/replica.py),
starts checkout sagas (tests/chaos/app.py) on worker processes connected through a multi-host
URL, stops the primary hard (``pg_ctl stop -m immediate``) once the sagas are under way, keeps
it down ``--down`` seconds, promotes the replica, and prints: how long after the promotion the
first checkpoint commits on the new primary (work resumes), when the last saga ends, and the
checks (nothing acknowledged lost, every effect once). The machine is shared: figures are
noisy, compare runs taken side by side.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from tests.failover.harness import run_failover
from tests.failover.replica import tools_missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.failover", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sagas", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--down", type=float, default=1.0, help="seconds without a primary")
    parser.add_argument("--seed", type=int, default=1)
    options = parser.parse_args(argv)
    reason = tools_missing()
    if reason is not None:
        print(f"cannot make private clusters: {reason}", file=sys.stderr)
        return 2
    resumed: list[float] = []
    failed = 0
    for round_ in range(options.rounds):
        work = Path(tempfile.mkdtemp(prefix="bench-failover-"))
        report = run_failover(
            work,
            sagas=options.sagas,
            workers=options.workers,
            down_seconds=options.down,
            seed=options.seed + round_,
        )
        figures = report.figures
        print(
            f"round {round_ + 1}: down {figures['down_s']} s; first checkpoint"
            f" {figures['first_checkpoint_after_promotion_s']} s after the promotion; last saga"
            f" ended {figures['last_end_after_promotion_s']} s after it;"
            f" {dict(report.statuses)}; acknowledged checked {report.checked_acknowledged};"
            f" re-executions {figures['reexecutions']}; violations {len(report.violations)}",
            flush=True,
        )
        for violation in report.violations[:20]:
            print(f"  {violation}")
        failed += bool(report.violations)
        if figures["first_checkpoint_after_promotion_s"] is not None:
            resumed.append(figures["first_checkpoint_after_promotion_s"])
    if resumed:
        print(
            f"resume after promotion: median {statistics.median(resumed):.3f} s,"
            f" max {max(resumed):.3f} s over {len(resumed)} rounds"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
