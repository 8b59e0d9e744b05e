"""Run a Stack: start its child processes, serve the Orchestrator, stop everything together.

SIGINT (Ctrl-C) and SIGTERM stop the service (steps in flight finish, the Orchestrator shuts
down), then each child gets SIGTERM, and SIGKILL if it lingers. A child that dies on its own
is reported and stops the whole stack (exit code 1): a half-running demo only confuses.
Children also get SIGTERM from the kernel if this process dies (Linux ``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from orchestrator.cli.stack import ChildProcess, Stack, UpContext
from orchestrator.errors import ConfigurationError
from orchestrator.http.app import create_app
from orchestrator.http.server import SupervisedServer, server_config
from orchestrator.tracing import flush_tracing

READY_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
MONITOR_SECONDS = 0.25
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class _Running:
    spec: ChildProcess
    process: subprocess.Popen[bytes]


def _start(spec: ChildProcess) -> _Running:
    process = subprocess.Popen(
        list(spec.argv),
        env={**os.environ, **spec.env},
        start_new_session=True,  # Ctrl-C reaches us only; we stop the children in order
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
    )
    return _Running(spec, process)


async def _wait_ready(running: _Running, client: httpx.AsyncClient) -> None:
    spec = running.spec
    if spec.url is None or spec.health_path is None:
        return
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while True:
        code = running.process.poll()
        if code is not None:
            raise ConfigurationError(f"{spec.name} exited with code {code} while starting")
        with contextlib.suppress(httpx.HTTPError):
            if (await client.get(spec.url.rstrip("/") + spec.health_path)).is_success:
                return
        if time.monotonic() > deadline:
            raise ConfigurationError(f"{spec.name} did not answer {spec.health_path} in time")
        await asyncio.sleep(0.1)


def _stop(children: list[_Running]) -> None:
    for child in children:
        if child.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for child in children:
        try:
            child.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.process.pid, signal.SIGKILL)
            child.process.wait()


async def run_stack(
    stack: Stack,
    context: UpContext,
    *,
    api_key: str | None = None,
    echo: Callable[[str], None] = print,
) -> int:
    """Run ``stack`` until SIGINT/SIGTERM or a child's death; returns the exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    children: list[_Running] = []
    code = 0
    try:
        async with httpx.AsyncClient(timeout=2.0) as client:
            for spec in stack.processes:
                children.append(_start(spec))
            await asyncio.gather(*(_wait_ready(child, client) for child in children))
        api = create_app(stack.orchestrator, api_key=api_key, webhooks=stack.webhooks)
        for router in stack.routers:
            api.include_router(router)
        server = SupervisedServer(server_config(api, context.host, context.port))
        serving = asyncio.create_task(server.serve())
        announced = False
        while not stop.is_set():
            if serving.done():
                echo("the service stopped (see the error above)")
                code = 1
                break
            if server.started and not announced:
                announced = True
                _announce(stack, context, echo)
            dead = [child for child in children if child.process.poll() is not None]
            if dead:
                for child in dead:
                    echo(f"{child.spec.name} exited with code {child.process.returncode}")
                code = 1
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), MONITOR_SECONDS)
        echo("stopping ...")
        server.should_exit = True
        with contextlib.suppress(Exception, SystemExit):
            await serving
    finally:
        await asyncio.to_thread(_stop, children)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await asyncio.to_thread(flush_tracing, stack.orchestrator.tracer_provider)
    return code


def _announce(stack: Stack, context: UpContext, echo: Callable[[str], None]) -> None:
    rows = [(name, url) for name, url in stack.links.items()]
    rows.append(("orchestrator", f"{context.url}  (API docs: {context.url}/docs)"))
    rows.append(("console", f"{context.url}/console"))  # the operator console: workflows
    rows += [(child.name, child.url) for child in stack.processes if child.url]
    width = max(len(name) for name, _ in rows)
    for name, url in rows:
        echo(f"  {name:<{width}}  {url}")
    echo("up: press Ctrl-C to stop everything")
