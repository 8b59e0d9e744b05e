"""Orchestrator: the composition root (settings -> store -> engine) and the public API."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from orchestrator import context, saga, timers
from orchestrator.clock import Clock, DatabaseClock
from orchestrator.config import Settings, resolve_database_url
from orchestrator.context import StepContext
from orchestrator.control import Control, _call, _call_infos, _call_steps
from orchestrator.engine import Engine
from orchestrator.errors import InvalidArgumentError
from orchestrator.messaging import DEFAULT_TIMEOUT_SECONDS, Messaging
from orchestrator.metrics import Metrics
from orchestrator.registration import Registration
from orchestrator.retry import DEFAULT_COMPENSATION_RETRY, Retry
from orchestrator.step import StepFunction, call_step
from orchestrator.store import create_store
from orchestrator.store.base import Store
from orchestrator.tracing import Tracing
from orchestrator.workflow import (
    Registry,
    StartOptions,
    WorkflowFunction,
    WorkflowHandle,
)

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider
    from prometheus_client import CollectorRegistry

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


class Orchestrator(Registration, Control):
    """A durable-workflow application: register workflows and steps, then ``async with app``.

    Args:
        app_name: names the application (and the embedded SQLite file).
        database_url: ``postgresql://…`` or ``sqlite:///path``; None reads ``DATABASE_URL`` /
            ``ORCHESTRATOR_DATABASE_URL``, else uses ``./.orchestrator/<app_name>.db``.
        executor_id: this process's id; the default ``local`` is stable, so a restarted single
            process recovers its own work. Give each worker of a fleet its own.
        app_version: the code version recorded with workflows; default: a hash of the
            registered workflows. Only workers of the same version recover a workflow.
        schema: PostgreSQL schema holding the tables (default ``orchestrator``).
        clock: a Clock (tests inject a FakeClock); default: the database clock.
        lease_seconds: a worker silent this long is dead and its workflows are taken over
            (default 30).
        tracer_provider: the OpenTelemetry TracerProvider for this app's spans; default: the
            global one the application set (none set: no spans, at almost no cost). The
            library never sets a global provider itself; see ``configure_tracing``.
        metrics_registry: the Prometheus registry for this app's metrics; default: a registry
            of its own (served by the HTTP service at ``/metrics``).
    """

    def __init__(
        self,
        app_name: str = "orchestrator",
        database_url: str | None = None,
        *,
        executor_id: str | None = None,
        app_version: str | None = None,
        schema: str | None = None,
        clock: Clock | None = None,
        lease_seconds: float | None = None,
        settings: Settings | None = None,
        tracer_provider: TracerProvider | None = None,
        metrics_registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.app_name = app_name
        url = database_url or resolve_database_url(app_name, self.settings)
        self.store: Store = create_store(
            url,
            schema=schema or self.settings.schema_name,
            clock_ms=clock.now_ms if clock is not None else None,
        )
        self.clock: Clock = clock or DatabaseClock(self.store.now_ms)
        self.registry = Registry()
        executor = executor_id or self.settings.executor_id
        self.tracing = Tracing(tracer_provider, executor_id=executor)
        self.metrics = Metrics(metrics_registry)
        self.engine = Engine(
            self.store,
            self.clock,
            self.registry,
            executor_id=executor,
            lease_seconds=lease_seconds or self.settings.lease_seconds,
            tracing=self.tracing,
            metrics=self.metrics,
        )
        self.messaging = Messaging(self.store, self.clock, self.engine.waiters)
        self._app_version = app_version or self.settings.app_version
        self._inline_steps: dict[tuple[str, Callable[..., Any]], StepFunction[Any, Any]] = {}
        self._ops: dict[Callable[..., Any], StepFunction[Any, Any]] = {
            _call: StepFunction(_call, name="_call"),
            _call_infos: StepFunction(_call_infos, name="_call_infos"),
            _call_steps: StepFunction(_call_steps, name="_call_steps"),
        }

    # -- life cycle -------------------------------------------------------------------------
    @property
    def executor_id(self) -> str:
        return self.engine.executor_id

    @property
    def app_version(self) -> str:
        return self._app_version or self._workflows_hash()

    def _workflows_hash(self) -> str:
        digest = hashlib.sha256()
        for name in sorted(self.registry.workflows):
            digest.update(name.encode())
            code = getattr(self.registry.workflows[name].fn, "__code__", None)
            if code is not None:
                digest.update(code.co_code)
        return digest.hexdigest()[:16]

    async def launch(self) -> None:
        """Open the store (migrating it), then recover this executor's unfinished workflows."""
        if self.engine.launched:
            return
        await self.store.open()
        if isinstance(self.clock, DatabaseClock):
            await self.clock.sync()
        await self.engine.launch(self.app_version)

    async def shutdown(self, timeout: float | None = None) -> None:
        """Let running workflows continue up to ``timeout`` seconds, then stop them (they stay
        PENDING and are recovered later) and close the store."""
        if not self.engine.launched:
            return  # never launched, or already shut down
        await self.engine.shutdown(self.settings.shutdown_timeout if timeout is None else timeout)
        await self.store.close()

    async def __aenter__(self) -> Orchestrator:
        await self.launch()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.shutdown()

    # -- inside workflows -------------------------------------------------------------------
    async def run_step(
        self,
        fn: Callable[..., Awaitable[T]] | Callable[..., T],
        *args: Any,
        name: str | None = None,
        retry: Retry | None = None,
        **kwargs: Any,
    ) -> T:
        """Run any function as a durable step of the current workflow (an inline step)."""
        step_name = name or getattr(fn, "__qualname__", None)
        if not step_name:
            raise InvalidArgumentError("run_step needs name= for a callable without __qualname__")
        key = (step_name, fn)
        step = self._inline_steps.get(key)
        if step is None:
            step = self._inline_steps[key] = StepFunction(fn, name=step_name)
        result: T = await call_step(step, args, kwargs, retry=retry)
        return result

    async def compensate(
        self, fn: Callable[..., Awaitable[Any]] | Callable[..., Any], *args: Any, **kwargs: Any
    ) -> None:
        """Register, from this point of the workflow on, a compensation to run with these
        arguments if the saga rolls back (for work done outside a step, or to register an
        undo before acting). ``fn`` may be a step or any function."""
        run = context.current_run("app.compensate()")
        if isinstance(fn, StepFunction):
            function: StepFunction[Any, Any] = fn
        else:
            name = getattr(fn, "__qualname__", None)
            if not name:
                raise InvalidArgumentError("app.compensate() needs a named function")
            known = self.registry.compensations.get(name)
            function = (
                known
                if known is not None and known.fn is fn
                else StepFunction(fn, name=name, retry=DEFAULT_COMPENSATION_RETRY)
            )
            # Inline compensations are (re-)registered as the workflow (re)plays this call.
            self.registry.compensations[name] = function
        await saga.register(run, function, args, kwargs)

    def step_context(self) -> StepContext:
        """The running step's context: ``idempotency_key``, ``attempt``, ``step_number``."""
        return context.current_step()

    async def sleep(self, seconds: float) -> None:
        """Durable sleep (recorded wake-up time; recovery sleeps only what is left)."""
        await timers.sleep(seconds)

    async def now(self) -> dt.datetime:
        """The time, recorded inside a workflow so replays are deterministic."""
        return await timers.now()

    async def random(self) -> float:
        """A random float, recorded inside a workflow so replays are deterministic."""
        return await timers.random()

    async def _op(self, thunk: Callable[[], Awaitable[T]], op: Callable[..., Any] = _call) -> T:
        """Run a management call, recorded as a step when made inside a workflow."""
        result: T = await call_step(self._ops[op], (thunk,), {}, name=thunk.__name__)
        return result

    # -- messages, events, streams ---------------------------------------------------------
    async def send(
        self,
        workflow_id: str,
        message: Any,
        topic: str | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        """Send ``message`` to a workflow (read with ``recv(topic)``). Durable; inside a
        workflow it is a step (sent once however often the workflow replays); outside, the same
        ``idempotency_key`` makes repeats no-ops. Raises WorkflowNotFoundError, or
        WorkflowFinishedError when the workflow can never read it."""
        self.engine.require_launched("send")
        await self.messaging.send(workflow_id, message, topic, idempotency_key)

    async def recv(
        self, topic: str | None = None, timeout: float | None = DEFAULT_TIMEOUT_SECONDS
    ) -> Any:
        """Inside a workflow: consume the oldest message on ``topic`` exactly once, waiting up
        to ``timeout`` seconds (durably: a recovered workflow waits only what is left); None on
        timeout."""
        return await self.messaging.recv(topic, timeout)

    async def set_event(self, key: str, value: Any) -> None:
        """Inside a workflow: publish ``value`` under ``key`` (a later set overwrites)."""
        await self.messaging.set_event(key, value)

    async def get_event(
        self, workflow_id: str, key: str, timeout: float | None = DEFAULT_TIMEOUT_SECONDS
    ) -> Any:
        """Wait for a workflow's event (e.g. a payment URL); None if it is not set within
        ``timeout`` seconds or the workflow finished without setting it."""
        self.engine.require_launched("get_event")
        return await self.messaging.get_event(workflow_id, key, timeout)

    async def get_events(self, workflow_id: str) -> dict[str, Any]:
        """All current events of a workflow."""
        self.engine.require_launched("get_events")
        return await self.messaging.get_events(workflow_id)

    async def write_stream(self, key: str, value: Any) -> None:
        """Inside a workflow: append ``value`` to its stream ``key`` (progress, tokens…)."""
        await self.messaging.write_stream(key, value)

    async def close_stream(self, key: str) -> None:
        """Inside a workflow: end its stream ``key``; readers stop after the last value."""
        await self.messaging.write_stream(key, None, close=True)

    def read_stream(self, workflow_id: str, key: str) -> AsyncIterator[Any]:
        """Iterate a workflow's stream as it is written, until closed or the workflow ends."""
        self.engine.require_launched("read_stream")
        return self.messaging.read_stream(workflow_id, key)

    # -- starting and managing workflows ----------------------------------------------------
    def _workflow_of(
        self, workflow: WorkflowFunction[Any, Any] | str
    ) -> WorkflowFunction[Any, Any]:
        if isinstance(workflow, str):
            return self.engine.workflow_named(workflow)
        if not isinstance(workflow, WorkflowFunction):
            raise InvalidArgumentError(
                f"{workflow!r} is not a workflow: decorate it with @app.workflow()"
            )
        if self.registry.workflows.get(workflow.name) is not workflow:
            raise InvalidArgumentError(f"workflow {workflow.name!r} belongs to another app")
        return workflow

    async def start(
        self,
        workflow: WorkflowFunction[P, R] | str,
        *args: Any,
        workflow_id: str | None = None,
        queue: str | None = None,
        priority: int = 0,
        dedup_id: str | None = None,
        partition_key: str | None = None,
        delay: float | None = None,
        timeout: float | None = None,
        if_duplicate: str = "raise",
        **kwargs: Any,
    ) -> WorkflowHandle[R]:
        """Start a workflow and return its handle at once. The id is an idempotency key: the
        same id returns the existing workflow's handle. Inside a workflow this starts a child.

        With ``queue=`` the workflow is ENQUEUED and started by whichever worker dequeues it
        first, within the queue's limits: ``priority`` (lower first, on a priority queue),
        ``dedup_id`` (one active workflow per id: DuplicateWorkflowError, or with
        ``if_duplicate="return"`` the active one's handle), ``partition_key`` (partitioned
        queues), ``delay`` (seconds before it may start). ``timeout`` (seconds) is a deadline
        after which the workflow is cancelled (a saga rolls back)."""
        options = StartOptions(
            workflow_id=workflow_id,
            queue=queue,
            priority=priority,
            dedup_id=dedup_id,
            partition_key=partition_key,
            delay=delay,
            timeout=timeout,
            if_duplicate=if_duplicate,
        )
        handle: WorkflowHandle[R] = await self.engine.start_workflow(
            self._workflow_of(workflow), args, kwargs, options
        )
        return handle
