"""``make load``: the shop under locust, on PostgreSQL, for a fixed time; writes a report.

Starts ``saga up`` (the sample shop) on a freshly created database, runs
``locust -f bench/locustfile.py --headless`` against it, stops everything, and writes locust's
CSV and HTML plus ``load-summary.json`` under ``bench/results/`` (throughput, p50/p95/p99 of
order -> payment URL and order -> completion, failures), printing the summary.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench import pgadmin
from bench.runner import REPO_ROOT
from orchestrator.cli.stack import free_port

DEFAULT_ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://root@127.0.0.1:5432/root")
FLOWS = ("order -> payment URL", "order -> completion")


def _drain(shop: subprocess.Popen[str], log: Path) -> None:
    """Copy the rest of the shop's output to ``log`` in a thread: an unread pipe fills up and
    then blocks every write (a log line) of the processes behind it."""
    assert shop.stdout is not None
    stdout = shop.stdout

    def copy() -> None:
        with log.open("w") as out:
            for line in stdout:
                out.write(line)

    threading.Thread(target=copy, name="shop-output", daemon=True).start()


def _start_shop(database_url: str, port: int, args: argparse.Namespace) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHOP_", "PAYMENTS_"))}
    env |= {
        "DATABASE_URL": database_url,
        "INVENTORY_INITIAL_STOCK": "1000000000",  # the load test measures sagas, not sellouts
        "SHIPPING_TRANSIENT_FAILURE_RATE": str(args.shipping_transient_rate),
        "SHIPPING_TERMINAL_FAILURE_RATE": "0",
        "PYTHONUNBUFFERED": "1",
    }
    argv = [sys.executable, "-m", "orchestrator.cli", "up", "--port", str(port)]
    shop = subprocess.Popen(
        argv, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert shop.stdout is not None
    for line in shop.stdout:
        print(f"  saga up | {line.rstrip()}", flush=True)
        if line.startswith("up:"):
            return shop
    raise SystemExit(f"saga up exited with {shop.wait()}")


def _row(stats: list[dict[str, str]], kind: str, name: str) -> dict[str, Any] | None:
    for row in stats:
        if row["Type"] == kind and row["Name"] == name:
            return {
                "count": int(row["Request Count"]),
                "failures": int(row["Failure Count"]),
                "per_second": round(float(row["Requests/s"]), 2),
                "p50_ms": float(row["50%"]),
                "p95_ms": float(row["95%"]),
                "p99_ms": float(row["99%"]),
                "max_ms": float(row["Max Response Time"]),
            }
    return None


def summarize(prefix: Path, args: argparse.Namespace) -> dict[str, Any]:
    with Path(f"{prefix}_stats.csv").open() as handle:
        stats = list(csv.DictReader(handle))
    flows = {name: _row(stats, "FLOW", name) for name in FLOWS}
    requests = [row for row in stats if row["Type"] not in ("FLOW", "")]
    completion = flows["order -> completion"] or {"count": 0, "failures": 0}
    return {
        "duration_seconds": args.time,
        "users": args.users,
        "shipping_transient_rate": args.shipping_transient_rate,
        "orders_finished": completion["count"],
        "orders_failed": completion["failures"],
        "orders_per_second": completion.get("per_second", 0.0),
        "flows": flows,
        "http_requests": sum(int(r["Request Count"]) for r in requests),
        "http_failures": sum(int(r["Failure Count"]) for r in requests),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--time", type=int, default=60, help="seconds of load (default 60)")
    parser.add_argument("--users", type=int, default=20, help="concurrent customers")
    parser.add_argument("--spawn-rate", type=float, default=10.0, help="customers added per s")
    parser.add_argument("--admin-url", default=DEFAULT_ADMIN_URL, help="PostgreSQL admin URL")
    parser.add_argument("--database", default="shop_load", help="(re)created for the run")
    parser.add_argument("--shipping-transient-rate", type=float, default=0.02)
    parser.add_argument("--out", default="bench/results", help="report folder")
    args = parser.parse_args()

    out = REPO_ROOT / args.out
    out.mkdir(parents=True, exist_ok=True)
    prefix = out / "load"
    pgadmin.reset_database(args.admin_url, args.database)
    database_url = pgadmin.database_url(args.admin_url, args.database)
    port = free_port()
    shop = _start_shop(database_url, port, args)
    _drain(shop, out / "load-shop.log")
    try:
        locust = [
            str(Path(sys.executable).with_name("locust")),
            "-f", "bench/locustfile.py", "--headless",
            "--host", f"http://127.0.0.1:{port}",
            "-u", str(args.users), "-r", str(args.spawn_rate), "-t", f"{args.time}s",
            "--csv", str(prefix), "--html", f"{prefix}.html", "--only-summary",
        ]  # fmt: skip
        started = time.monotonic()
        subprocess.run(locust, cwd=REPO_ROOT, check=False)
        print(f"locust ran {time.monotonic() - started:.0f} s", flush=True)
    finally:
        shop.send_signal(signal.SIGINT)
        shop.wait(60)
    summary = summarize(prefix, args)
    (out / "load-summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"report: {prefix}.html, {prefix}_stats.csv, {out / 'load-summary.json'}")


if __name__ == "__main__":
    main()
