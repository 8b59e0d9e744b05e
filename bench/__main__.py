"""``python -m bench``: our engine and DBOS, benchmark by benchmark, on the same PostgreSQL."""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import sys
from pathlib import Path

from bench import pgadmin, report
from bench.config import DEFAULT_ADMIN_URL, DEFAULT_JSON, FAMILIES, select_families, select_sizes
from bench.driver import DBOS_QUEUE_POLLING_INTERVAL_SECONDS
from bench.runner import REPO_ROOT, RunOptions, log, run_all


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmarks of saga-orchestrator against DBOS on the same PostgreSQL. "
        "Each benchmark runs for our engine, then for DBOS, each in a fresh process on a "
        "freshly created database (bench_orch, bench_dbos).",
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
    parser.add_argument("--json", default=DEFAULT_JSON, help="results file (default: %(default)s)")
    parser.add_argument("--no-dbos", action="store_true", help="run our engine only")
    parser.add_argument(
        "--parked",
        type=int,
        metavar="N",
        help="workflows parked in recv for the memory benchmark (default 10000; --quick 1000)",
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
    sizes = select_sizes(quick=args.quick, parked=args.parked)
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
    options = RunOptions(
        admin_url=args.database_url,
        sizes=sizes,
        families=families,
        systems=systems,
        profile_dir=json_path.parent if args.profile else None,
    )
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
    for note in report.notes(outcome["results"]):
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
        "table": lines,
        "results": outcome["results"],
    }
    report.write_json(json_path, document)
    print(f"\nresults written to {json_path}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
