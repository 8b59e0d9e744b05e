"""Sizes of each benchmark (default, --quick, --parked) and the names of the families."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

# Benchmark families, in the order they run. Each runs for ours, then for DBOS.
FAMILIES: tuple[str, ...] = ("latency", "throughput", "queue", "messaging", "commits", "parked")
SYSTEMS: tuple[str, ...] = ("ours", "dbos")
DATABASES: dict[str, str] = {"ours": "bench_orch", "dbos": "bench_dbos"}
DEFAULT_ADMIN_URL = "postgresql://root@127.0.0.1:5432/root"
DEFAULT_JSON = "bench/results/latest.json"


@dataclass(frozen=True)
class Sizes:
    """How many workflows each benchmark runs."""

    latency_warmup: int = 30
    latency_runs: int = 300  # each of the 3-step and 0-step workflows, interleaved
    throughput: int = 5_000  # concurrent 3-step workflows
    queue: int = 5_000  # the same through a queue
    messaging_runs: int = 200  # send->recv, and start->get_event, each
    messaging_batch: int = 50  # recv workflows parked before a round of sends
    commits_sequential: int = 200  # idle: one at a time
    commits_concurrent: int = 1_000  # under load: all at once
    parked: int = 10_000  # workflows waiting in recv in one process
    window: int = 100  # in-flight start/send calls when parking and waking
    pg_reference_seconds: float = 2.0  # the single-connection INSERT commit loop

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Sizes:
        return cls(**data)


QUICK = Sizes(
    latency_warmup=10,
    latency_runs=50,
    throughput=500,
    queue=500,
    messaging_runs=30,
    messaging_batch=15,
    commits_sequential=50,
    commits_concurrent=200,
    parked=1_000,
    pg_reference_seconds=1.0,
)


def select_sizes(*, quick: bool, parked: int | None) -> Sizes:
    """The default sizes, or the --quick ones; --parked overrides the parked count."""
    sizes = QUICK if quick else Sizes()
    if parked is not None:
        sizes = dataclasses.replace(sizes, parked=parked)
    return sizes


def select_families(only: str | None) -> list[str]:
    """The families named by --only (comma separated), in the canonical order."""
    if not only:
        return list(FAMILIES)
    wanted = {name.strip() for name in only.split(",") if name.strip()}
    unknown = wanted - set(FAMILIES)
    if unknown:
        raise SystemExit(
            f"unknown benchmark(s) {', '.join(sorted(unknown))}: choose from {', '.join(FAMILIES)}"
        )
    return [name for name in FAMILIES if name in wanted]
