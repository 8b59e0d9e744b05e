"""``python -m bench``: our engine and DBOS, benchmark by benchmark, on the same PostgreSQL."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import importlib.util
import sys
from pathlib import Path

from bench import pgadmin, report
from bench.runner import DATABASE_PREFIX, REPO_ROOT, RunOptions, database_names, log, run_all
from bench.workloads import DBOS_QUEUE_POLLING_INTERVAL_SECONDS, FAMILIES, Sizes

DEFAULT_ADMIN_URL = "postgresql://root@127.0.0.1:5432/root"
DEFAULT_JSON = "bench/results/latest.json"
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


def select_sizes(*, quick: bool, parked: int | None, inflight: int | None) -> Sizes:
    """The default sizes, or the --quick ones; --parked and --inflight override theirs."""
    sizes = QUICK if quick else Sizes()
    if parked is not None:
        if parked < 1:
            raise SystemExit("--parked must be at least 1")
        sizes = dataclasses.replace(sizes, parked=parked)
    if inflight is not None:
        if inflight < 0:
            raise SystemExit("--inflight must be 0 (all at once) or more")
        sizes = dataclasses.replace(sizes, inflight=inflight)
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmarks of saga-orchestrator against DBOS on the same PostgreSQL. "
        "Each benchmark runs for our engine, then for DBOS, each in a fresh process on a "
        "freshly created database (bench_orch, bench_dbos; see --database-prefix).",
    )
    parser.add_argument(
        "--only", metavar="NAME[,NAME]", help=f"run only these: {', '.join(FAMILIES)}"
    )
    parser.add_argument("--quick", action="store_true", help="a small smoke run (~1 min)")
    parser.add_argument(
        "--database-url",
        default=DEFAULT_ADMIN_URL,
        help="admin URL; the benchmark databases are created next to it (default: %(default)s)",
    )
    parser.add_argument(
        "--database-prefix",
        default=DATABASE_PREFIX,
        help="the benchmark databases are <prefix>_orch and <prefix>_dbos (default: %(default)s)",
    )
    parser.add_argument("--json", default=DEFAULT_JSON, help="results file (default: %(default)s)")
    parser.add_argument("--no-dbos", action="store_true", help="run our engine only")
    parser.add_argument(
        "--parked",
        type=int,
        metavar="N",
        help="workflows parked in recv for the memory benchmark (default 10000; --quick 1000)",
    )
    parser.add_argument(
        "--inflight",
        type=int,
        metavar="N",
        help="workflows in flight in the throughput, queue and commits-under-load runs "
        "(default 500; 0: start all at once)",
    )
    parser.add_argument(
        "--tracing",
        action="store_true",
        help="instead of the comparison: the cost of tracing per step, ours with spans off and "
        "on (batch processor, OTLP/HTTP to a loopback receiver); see bench/tracing.py",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="--tracing: alternating off/on rounds (default %(default)s)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile every worker with pyinstrument (HTML next to the JSON; slows figures)",
    )
    return parser.parse_args(argv)


def dbos_version() -> str | None:
    if importlib.util.find_spec("dbos") is None:
        return None
    return importlib.metadata.version("dbos")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = select_sizes(quick=args.quick, parked=args.parked, inflight=args.inflight)
    families = select_families(args.only)
    systems = ["ours"]
    version = dbos_version()
    if not args.no_dbos:
        if version is None:
            log("dbos is not installed (scripts/bootstrap.sh dev bench): running ours only")
        else:
            systems.append("dbos")
    json_path = Path(args.json)
    if not json_path.is_absolute():
        json_path = REPO_ROOT / json_path
    json_path.parent.mkdir(parents=True, exist_ok=True)
    options = RunOptions(
        admin_url=args.database_url,
        sizes=sizes,
        families=families,
        systems=systems,
        profile_dir=json_path.parent if args.profile else None,
        databases=database_names(args.database_prefix),
    )
    if args.tracing:
        from bench import tracing

        figures = tracing.run(options, max(args.rounds, 1))
        report.write_json(json_path, {"meta": {"args": vars(args)}, "tracing": figures})
        print(f"\nresults written to {json_path}")
        return 0
    server = pgadmin.server_info(args.database_url)
    log(
        f"PostgreSQL {server['server_version']} (synchronous_commit={server['synchronous_commit']}"
        f", fsync={server['fsync']}); DBOS {version if 'dbos' in systems else 'not run'}; "
        f"benchmarks: {', '.join(families)}"
    )
    outcome = run_all(options)
    lines = report.table(sizes, outcome["results"])
    print()
    print(report.render(lines, outcome["reference"]))
    problems = report.errors(outcome["results"])
    for note in report.notes(outcome["results"], outcome["server_activity"]):
        print(f"note: {note}")
    for problem in problems:
        print(f"ERROR {problem}")
    document = {
        "meta": report.metadata(server, version if "dbos" in systems else None)
        | {
            "args": vars(args),
            "sizes": sizes.to_json(),
            "dbos_queue_polling_interval_s": DBOS_QUEUE_POLLING_INTERVAL_SECONDS,
        },
        "reference": outcome["reference"],
        "server_activity": outcome["server_activity"],
        "table": lines,
        "results": outcome["results"],
    }
    report.write_json(json_path, document)
    print(f"\nresults written to {json_path}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
