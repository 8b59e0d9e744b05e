"""One benchmark family on one system, in a fresh process: ``python -m bench.worker ...``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from bench.config import FAMILIES, SYSTEMS, Sizes
from bench.driver import make_driver
from bench.workloads import FAMILY_RUNNERS, Metrics, commits_cycle

COMMITS_MODES = ("prime", "baseline", "idle", "load")


async def run(system: str, family: str, database_url: str, sizes: Sizes, mode: str) -> Any:
    """Launch the system, run the family, shut down; the worker's JSON answer."""
    driver = make_driver(system, database_url, with_queue=family == "queue")
    if family == "queue" and driver.queue_unavailable is not None:
        return {"unavailable": driver.queue_unavailable}
    await driver.launch()
    try:
        metrics: Metrics
        if family == "commits":
            metrics = await commits_cycle(driver, sizes, mode)
        else:
            metrics = await FAMILY_RUNNERS[family](driver, sizes)
    finally:
        await driver.shutdown()
    return {"metrics": metrics}


def profiler(path: str | None) -> AbstractContextManager[Any]:
    """pyinstrument around the run when --profile is given (HTML written on exit)."""
    if path is None:
        return nullcontext()
    from pyinstrument import Profiler

    target = Path(path)

    class Profiled(AbstractContextManager[Any]):
        def __enter__(self) -> Profiled:
            self.profiler = Profiler(async_mode="enabled")
            self.profiler.start()
            return self

        def __exit__(self, *exc: object) -> None:
            self.profiler.stop()
            target.write_text(self.profiler.output_html())

    return Profiled()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.worker", description=__doc__)
    parser.add_argument("--system", choices=SYSTEMS, required=True)
    parser.add_argument("--family", choices=FAMILIES, required=True)
    parser.add_argument("--database-url", required=True, help="the system's own database")
    parser.add_argument("--sizes", required=True, help="Sizes as JSON")
    parser.add_argument("--mode", choices=COMMITS_MODES, default="idle", help="commits only")
    parser.add_argument("--out", required=True, help="where to write the JSON answer")
    parser.add_argument("--profile", help="write a pyinstrument HTML profile here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sizes = Sizes.from_json(json.loads(args.sizes))
    began = time.perf_counter()
    with profiler(args.profile):
        answer = asyncio.run(run(args.system, args.family, args.database_url, sizes, args.mode))
    answer["process_s"] = time.perf_counter() - began
    Path(args.out).write_text(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
