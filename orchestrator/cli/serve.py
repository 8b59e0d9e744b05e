"""`saga up` and `saga worker`: import an application (or a stack of processes around it), set
up logs and traces, and serve or run it until a signal."""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import socket
import sys
import uuid
from collections.abc import Callable
from typing import Annotated, Any

import typer

from orchestrator.app import Orchestrator
from orchestrator.cli.common import console, fail, run
from orchestrator.errors import OrchestratorError
from orchestrator.log_context import configure_logging
from orchestrator.tracing import configure_tracing, flush_tracing, tracing_requested

OtlpEndpoint = Annotated[
    str | None,
    typer.Option(
        "--otlp-endpoint",
        help="export traces over OTLP/HTTP to this collector (e.g. http://jaeger:4318); "
        "default: on when OTEL_EXPORTER_OTLP_ENDPOINT is set",
    ),
]


def _observe(app: Orchestrator, otlp_endpoint: str | None) -> None:
    """Logs carry workflow ids and trace ids; spans are exported when asked to (the option,
    or the standard OTEL_* variables)."""
    configure_logging()
    if otlp_endpoint is not None or tracing_requested(os.environ):
        configure_tracing(os.environ.get("OTEL_SERVICE_NAME") or app.app_name, otlp_endpoint)


def _import_target(target: str) -> Any:
    """Import ``module:attribute`` (the current directory on sys.path) and return it."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise typer.BadParameter(f"expected module:attribute (e.g. sagas.app:app), got {target!r}")
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise typer.BadParameter(f"cannot import {module_name!r}: {exc}") from exc
    return getattr(module, attribute, None)


def load_app(target: str) -> Orchestrator:
    """Import ``module:attribute`` and return the Orchestrator it names."""
    app = _import_target(target)
    if not isinstance(app, Orchestrator):
        raise typer.BadParameter(f"{target!r} is not an Orchestrator (got {type(app).__name__})")
    return app


def _exit_quietly_on_early_signals() -> None:
    """Until the command installs its own handlers (once the application is imported and about
    to launch), SIGTERM ends the process with code 0: nothing is running yet."""

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)


def worker(
    app_path: Annotated[str, typer.Argument(metavar="MODULE:ATTR", help="the Orchestrator")],
    executor_id: Annotated[
        str | None, typer.Option(help="this worker's id (default: host-pid-random)")
    ] = None,
    shutdown_timeout: Annotated[float, typer.Option(help="seconds to finish steps")] = 10.0,
    otlp_endpoint: OtlpEndpoint = None,
) -> None:
    """Run a worker: recover and take over workflows, dequeue, tick schedules, until SIGTERM."""
    _exit_quietly_on_early_signals()
    os.environ["ORCHESTRATOR_EXECUTOR_ID"] = (
        executor_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    )
    app = load_app(app_path)
    _observe(app, otlp_endpoint)

    async def work() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        try:
            async with app:
                console.print(f"worker {app.executor_id} running ({app.database})", highlight=False)
                await stop.wait()
                # Stop taking work; steps in flight finish and are checkpointed within the
                # grace period; what is left stays for recovery (this worker's lease is
                # released, so another worker takes it over at once).
                console.print(f"worker {app.executor_id} shutting down", highlight=False)
                await app.shutdown(shutdown_timeout)
        finally:
            await asyncio.to_thread(flush_tracing, app.tracer_provider)

    run(work)


# The sample shop (sagas/ and services/ in a checkout of this repository), found by name at
# run time: the orchestrator package never imports the sample application.
DEFAULT_UP_TARGET = "sagas.shop:stack"


def load_target(target: str) -> Orchestrator | Callable[..., Any]:
    """Import ``module:attribute``: an Orchestrator, or a stack factory (a callable)."""
    found = _import_target(target)
    if isinstance(found, Orchestrator) or (callable(found) and not isinstance(found, type)):
        return found
    raise typer.BadParameter(
        f"{target!r} is neither an Orchestrator nor a stack factory (got {type(found).__name__})"
    )


def up(
    target: Annotated[
        str,
        typer.Argument(
            metavar="[MODULE:ATTR]",
            help="an Orchestrator, or a function (UpContext) -> Stack that adds webhooks, "
            "routes and child processes (default: the sample shop)",
        ),
    ] = DEFAULT_UP_TARGET,
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="0: any free port")] = 8000,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="ORCHESTRATOR_API_KEY", help="bearer key (required off 127.0.0.1)"),
    ] = None,
    otlp_endpoint: OtlpEndpoint = None,
) -> None:
    """Serve an application's HTTP API (workflows, messages, events, webhooks) and run it;
    with no argument, run the sample shop (orchestrator, inventory, payments, shipping)."""
    _exit_quietly_on_early_signals()
    from orchestrator.cli.ports import check_port, free_port
    from orchestrator.cli.stack import Stack, UpContext
    from orchestrator.cli.supervisor import run_stack
    from orchestrator.http import check_bind, serve

    try:
        check_bind(host, api_key)
        if port:
            check_port(host, port)  # before anything starts: one line, not a traceback
        loaded = load_target(target)
        if isinstance(loaded, Orchestrator):
            _observe(loaded, otlp_endpoint)
            serve(loaded, host=host, port=port or free_port(host), api_key=api_key)
            return
        context = UpContext(host=host, port=port or free_port(host))
        stack = loaded(context)
        if not isinstance(stack, Stack):
            raise typer.BadParameter(f"{target!r} returned {type(stack).__name__}, not a Stack")
        _observe(stack.orchestrator, otlp_endpoint)
        code = asyncio.run(
            run_stack(stack, context, api_key=api_key, echo=lambda line: print(line, flush=True))
        )
    except OrchestratorError as exc:
        fail(exc)
        raise typer.Exit(1) from None
    raise typer.Exit(code)
