"""``python -m bench --tracing``: the cost of tracing per step, ours without and with spans.

Two measurements, each alternating tracing off / on in fresh processes (so slow drift of the
shared machine hits both):

- **latency** (PostgreSQL): the engine's latency family (3-step and 0-step workflows one at a
  time; per-step overhead = (median 3-step - median 0-step) / 3), tracing off (no
  TracerProvider: OpenTelemetry's no-op) and on (``configure_tracing``: an SDK provider, batch
  span processor, OTLP/HTTP exporter to a receiver this process serves on loopback).
- **cpu** (SQLite ``:memory:``, no network): one workflow of N steps, so per-step time is mostly
  Python; the difference is what spans cost per step on the event loop.

Also ``python -m bench.tracing micro MODE STEPS ENDPOINT`` (one cpu run; used by the above).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench import pgadmin
from bench.runner import REPO_ROOT, RunOptions, call_worker, log

MODES = ("off", "otlp")
DATABASE = "bench_tracing"  # not bench_orch: a comparison run may use that one meanwhile
CPU_STEPS = 2_000
CPU_REPEATS = 5
MICRO_COMMAND = (sys.executable, "-m", "bench.tracing", "micro")


class CountingReceiver:
    """An OTLP/HTTP endpoint that accepts every export and counts requests, bytes and (when
    opentelemetry-proto is installed) spans: a stand-in for Jaeger's collector."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0
        self.spans = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.count(body)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def count(self, body: bytes) -> None:
        self.requests += 1
        self.bytes += len(body)
        try:
            from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
                ExportTraceServiceRequest,
            )
        except ImportError:
            return
        request = ExportTraceServiceRequest.FromString(body)
        self.spans += sum(
            len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans
        )

    def close(self) -> None:
        self.server.shutdown()


def _with_tracing(mode: str, endpoint: str) -> dict[str, str]:
    """The environment of a worker: ``BENCH_TRACING`` tells OursDriver what to set up."""
    env = {"BENCH_TRACING": mode, "BENCH_OTLP_ENDPOINT": endpoint}
    os.environ.update(env)  # call_worker's subprocess inherits it
    return env


def run_latency(options: RunOptions, receiver: CountingReceiver, rounds: int) -> dict[str, Any]:
    per_mode: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    for round_number in range(rounds):
        for mode in MODES:
            _with_tracing(mode, receiver.endpoint)
            pgadmin.reset_database(options.admin_url, DATABASE)
            log(f"latency, tracing {mode}, round {round_number + 1}/{rounds} …")
            outcome = call_worker(options, "ours", "latency", database=DATABASE)
            if "metrics" not in outcome:
                raise SystemExit(f"latency worker failed: {outcome}")
            per_mode[mode].append(outcome["metrics"])
            log(f"  per step {outcome['metrics']['per_step_ms']:.3f} ms")
    os.environ.pop("BENCH_TRACING", None)
    summary: dict[str, Any] = {}
    for mode, runs in per_mode.items():
        summary[mode] = {
            key: statistics.median(run[key] for run in runs)
            for key in ("seq0_median_ms", "seq3_median_ms", "per_step_ms", "marginal_step_ms")
        } | {"per_step_ms_runs": [run["per_step_ms"] for run in runs]}
    return summary


def run_cpu(receiver: CountingReceiver, rounds: int) -> dict[str, Any]:
    per_mode: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(rounds):
        for mode in MODES:
            completed = subprocess.run(
                [*MICRO_COMMAND, mode, str(CPU_STEPS), receiver.endpoint],
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
            if completed.returncode != 0:
                raise SystemExit(f"cpu run failed: {completed.stderr[-2000:]}")
            per_mode[mode].append(json.loads(completed.stdout.strip().splitlines()[-1])["us"])
    return {
        mode: {"per_step_us": statistics.median(runs), "runs": runs}
        for mode, runs in per_mode.items()
    }


def report(latency: dict[str, Any], cpu: dict[str, Any], receiver: CountingReceiver) -> str:
    off, on = latency["off"], latency["otlp"]
    lines = [
        "tracing cost per step (medians over rounds; off = no TracerProvider, "
        "otlp = configure_tracing: batch processor, OTLP/HTTP to a loopback receiver)",
        f"{'measure':44} {'off':>10} {'otlp':>10} {'delta':>10}",
        f"{'PostgreSQL 0-step workflow, median (ms)':44} {off['seq0_median_ms']:10.3f} "
        f"{on['seq0_median_ms']:10.3f} {on['seq0_median_ms'] - off['seq0_median_ms']:10.3f}",
        f"{'PostgreSQL 3-step workflow, median (ms)':44} {off['seq3_median_ms']:10.3f} "
        f"{on['seq3_median_ms']:10.3f} {on['seq3_median_ms'] - off['seq3_median_ms']:10.3f}",
        f"{'PostgreSQL per-step overhead (ms)':44} {off['per_step_ms']:10.3f} "
        f"{on['per_step_ms']:10.3f} {on['per_step_ms'] - off['per_step_ms']:10.3f}",
        f"{'PostgreSQL a step among others (ms)':44} {off['marginal_step_ms']:10.3f} "
        f"{on['marginal_step_ms']:10.3f} {on['marginal_step_ms'] - off['marginal_step_ms']:10.3f}",
        f"{'SQLite :memory: per step, CPU-bound (us)':44} {cpu['off']['per_step_us']:10.1f} "
        f"{cpu['otlp']['per_step_us']:10.1f} "
        f"{cpu['otlp']['per_step_us'] - cpu['off']['per_step_us']:10.1f}",
        f"receiver: {receiver.requests} OTLP requests, {receiver.bytes / 1e6:.1f} MB, "
        f"{receiver.spans} spans",
        f"per-run PostgreSQL per-step (ms): off {off['per_step_ms_runs']}, "
        f"otlp {on['per_step_ms_runs']}",
    ]
    return "\n".join(lines)


def run(options: RunOptions, rounds: int) -> dict[str, Any]:
    """The whole tracing benchmark; prints the table and returns the figures."""
    receiver = CountingReceiver()
    try:
        latency = run_latency(options, receiver, rounds)
        log("cpu (SQLite :memory:) …")
        cpu = run_cpu(receiver, rounds)
        print()
        print(report(latency, cpu, receiver))
        return {
            "latency": latency,
            "cpu": cpu,
            "receiver": {
                "requests": receiver.requests,
                "bytes": receiver.bytes,
                "spans": receiver.spans,
            },
        }
    finally:
        receiver.close()


# -- one cpu run, in its own process (a global TracerProvider can be set once) ----------------
async def _micro(mode: str, steps: int) -> float:
    from orchestrator import Orchestrator

    app = Orchestrator("bench-micro", "sqlite:///:memory:", app_version="bench")

    @app.step(name="echo")
    async def echo(x: int) -> int:
        return x

    @app.workflow(name="many")
    async def many(n: int) -> int:
        for i in range(n):
            await echo(i)
        return n

    async with app:
        await (await app.start(many, 50)).result()  # warm-up
        samples = []
        for _ in range(CPU_REPEATS):
            began = time.perf_counter()
            await (await app.start(many, steps)).result()
            samples.append((time.perf_counter() - began) / steps * 1e6)
    return statistics.median(samples)


def configure_for_bench(mode: str, endpoint: str) -> None:
    """What a benchmark process sets up for ``mode`` (also used by bench/worker.py)."""
    if mode == "otlp":
        from orchestrator import configure_tracing

        configure_tracing("bench", endpoint)


def main(argv: list[str]) -> int:
    if len(argv) != 4 or argv[0] != "micro" or argv[1] not in MODES:
        print("usage: python -m bench.tracing micro off|otlp STEPS ENDPOINT", file=sys.stderr)
        return 2
    _, mode, steps, endpoint = argv
    configure_for_bench(mode, endpoint)
    print(json.dumps({"mode": mode, "us": asyncio.run(_micro(mode, int(steps)))}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
