"""Orchestrator: the composition root (settings -> store -> engine) and the public API.

Its methods are the boundary of the framework: applications, the HTTP service and the CLI use
them and nothing behind them. The work is done by the parts it composes: the engine (runs,
starting, results, operations, messaging), a Registrar (the decorators) and an Administration
(the operator's calls).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from orchestrator import context
from orchestrator.administration import Administration
from orchestrator.clock import Clock, DatabaseClock
from orchestrator.codec import PayloadCodec, subject_codec
from orchestrator.config import Settings, load_settings, resolve_database_url
from orchestrator.context import StepContext
from orchestrator.engine import patches, saga, timers
from orchestrator.engine.core import Engine
from orchestrator.engine.messaging import DEFAULT_TIMEOUT_SECONDS
from orchestrator.engine.registry import Registry
from orchestrator.engine.replay import ReplayVerdict
from orchestrator.engine.run import require_run
from orchestrator.engine.steps import StepFunction, call_step
from orchestrator.engine.workflows import (
    DEFAULT_MAX_RECOVERY_ATTEMPTS,
    NOT_GIVEN,
    StartOptions,
    WorkflowFunction,
    WorkflowHandle,
    start_options,
)
from orchestrator.errors import ConfigurationError, InvalidArgumentError, StoreError
from orchestrator.metrics import Metrics
from orchestrator.process import raise_gc_threshold, restore_gc_threshold
from orchestrator.queues import Queue
from orchestrator.registration import Registrar, _StepDecorator
from orchestrator.retention import RetentionPolicy, RetentionSpec
from orchestrator.retry import DEFAULT_COMPENSATION_RETRY, Retry
from orchestrator.store import create_store
from orchestrator.store.base import (
    KeyedDelivery,
    MigrationState,
    QueueStats,
    Store,
)
from orchestrator.store.encoded import EncodedStore, message_sealer
from orchestrator.tracing import Tracing
from orchestrator.types import WorkflowStatus
from orchestrator.views import (
    AuditEntry,
    BulkResult,
    RollbackPlan,
    ScheduleInfo,
    StepInfo,
    VersionInfo,
    WorkerInfo,
    WorkflowFilter,
    WorkflowInfo,
    WorkflowPage,
)
from orchestrator.webhooks import WebhookDeclaration

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider
    from prometheus_client import CollectorRegistry

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
H = TypeVar("H", bound=Callable[..., Any])


class Orchestrator:
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
        check_step_arguments: record a hash of each step's arguments with the step, so a
            replay (a recovery, the upgrade check) that calls the right step with other
            arguments is named as non-deterministic too (default: off, or
            ``ORCHESTRATOR_CHECK_STEP_ARGUMENTS``); see docs/upgrading.md.
        max_payload_bytes: the largest value stored, in bytes of its JSON encoding: a
            workflow's input and output, a step's output, a message, an event, a stream item
            (default 2 MiB, or ``ORCHESTRATOR_MAX_PAYLOAD_BYTES``). The call that would store a
            larger one raises PayloadTooLargeError; an error is cut to fit instead.
        tracer_provider: the OpenTelemetry TracerProvider for this app's spans; default: the
            global one the application set (none set: no spans, at almost no cost). The
            library never sets a global provider itself; see ``configure_tracing``.
        retention: how long finished workflows are kept per final status, then deleted by a
            background sweep of every worker (once across them): ``"SUCCESS=7d,
            COMPENSATED=30d"`` or a mapping of status -> timedelta/seconds/"7d"; unlisted
            statuses are kept for ever (default: ``ORCHESTRATOR_RETENTION``, else none).
            See docs/operations.md.
        metrics_registry: the Prometheus registry for this app's metrics; default: a registry
            of its own (served by the HTTP service at ``/metrics``).
        codec: a PayloadCodec every stored value passes through (inputs, outputs, step
            outputs, errors, messages, events, stream items): ``CompressionCodec()``,
            ``AesGcmCodec(Keyring(...))`` or a ``ChainCodec`` of both; default none, and then
            values are stored as JSON exactly as before. See docs/data.md.

    Raises:
        ConfigurationError: an unusable database URL, app name or setting.
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
        check_step_arguments: bool | None = None,
        max_payload_bytes: int | None = None,
        settings: Settings | None = None,
        tracer_provider: TracerProvider | None = None,
        metrics_registry: CollectorRegistry | None = None,
        retention: RetentionSpec | None = None,
        codec: PayloadCodec | None = None,
        read_database_url: str | None = None,
    ) -> None:
        self.settings = settings or load_settings()
        self._gc_raised = False  # holds the raised collector threshold (orchestrator/process.py)
        if max_payload_bytes is None:
            max_payload_bytes = self.settings.max_payload_bytes
        elif isinstance(max_payload_bytes, bool) or not isinstance(max_payload_bytes, int):
            raise ConfigurationError(
                f"max_payload_bytes must be an int (bytes), got {type(max_payload_bytes).__name__}"
            )
        if max_payload_bytes <= 0:
            raise ConfigurationError(
                f"max_payload_bytes must be greater than 0, got {max_payload_bytes}"
            )
        policy = RetentionPolicy.parse(self.settings.retention if retention is None else retention)
        self.app_name = app_name
        url = database_url or resolve_database_url(app_name, self.settings)
        self.store: Store = create_store(
            url,
            schema=schema or self.settings.schema_name,
            clock_ms=clock.now_ms if clock is not None else None,
            transaction_pooled=self.settings.database_pooling == "transaction",
            direct_url=self.settings.direct_database_url or None,
            sealer=message_sealer(codec),  # messages by key: sealed for their receiver
            pool_size=self.settings.database_pool_size,
        )
        if codec is not None:  # none: the engine talks to the store itself, nothing added
            self.store = EncodedStore(self.store, codec)
        self._subjects = None if codec is None else subject_codec(codec)  # for rewraps
        # Listings (list_workflows, pages, counts) may read from a replica: see docs/operations.md.
        read_url = read_database_url or self.settings.read_database_url
        self.reads: Store = self.store
        if read_url:
            self.reads = create_store(
                read_url,
                schema=schema or self.settings.schema_name,
                clock_ms=clock.now_ms if clock is not None else None,
                read_only=True,
                pool_size=self.settings.database_pool_size,
            )
            if codec is not None:
                self.reads = EncodedStore(self.reads, codec)
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
            stranded_check_seconds=self.settings.stranded_check_seconds,
            max_payload_bytes=max_payload_bytes,
            retention=policy,
            retention_sweep_seconds=self.settings.retention_sweep_seconds,
            retention_batch=self.settings.retention_batch,
            pending_message_seconds=self.settings.pending_message_seconds,
            tracing=self.tracing,
            metrics=self.metrics,
        )
        self.engine.state.check_step_arguments = (
            self.settings.check_step_arguments
            if check_step_arguments is None
            else check_step_arguments
        )
        self._registrar = Registrar(self.registry, self.engine)
        self._admin = Administration(self.engine, self.store, self._workflow_of, reads=self.reads)
        self._app_version = app_version or self.settings.app_version
        self._inline_steps: dict[tuple[str, Callable[..., Any]], StepFunction[Any, Any]] = {}
        # How the HTTP service and console show stored values to people:
        # redact(value, context) -> value (orchestrator.http.redaction; None: its default).
        self.redact: Callable[[Any, Any], Any] | None = None

    # -- declaring (before launch) ------------------------------------------------------------
    def queue(
        self,
        name: str,
        *,
        concurrency: int | None = None,
        worker_concurrency: int | None = None,
        rate_limit: tuple[int, float] | None = None,
        priority: bool = False,
        partitioned: bool = False,
        dequeue: bool = True,
    ) -> Queue:
        """Declare a queue (before launch); start workflows on it with ``start(queue=name)``.
        Every worker that declares it dequeues from it (see orchestrator.queues.Queue).

        Raises:
            ConfigurationError: after launch, or a name declared twice.
            InvalidArgumentError: a limit out of range.
        """
        return self._registrar.queue(
            name,
            concurrency=concurrency,
            worker_concurrency=worker_concurrency,
            rate_limit=rate_limit,
            priority=priority,
            partitioned=partitioned,
            dequeue=dequeue,
        )

    def webhook(
        self,
        source: str,
        *,
        secret: str | Sequence[str],
        scheme: Any,
        payload: type[Any] | None = None,
        tolerance_seconds: float = 300.0,
    ) -> Callable[[H], H]:
        """Declare a webhook source, served by the HTTP service at ``POST /webhooks/{source}``
        (see ``Registrar.webhook`` and docs/http.md for the handler's contract).

        Raises:
            ConfigurationError: after launch, a source declared twice, a bad tolerance.
        """
        return self._registrar.webhook(
            source,
            secret=secret,
            scheme=scheme,
            payload=payload,
            tolerance_seconds=tolerance_seconds,
        )

    def workflow(
        self,
        name: str | None = None,
        *,
        max_recovery_attempts: int | None = DEFAULT_MAX_RECOVERY_ATTEMPTS,
        timeout: float | None = None,
        schedule: str | None = None,
        catch_up: bool = False,
    ) -> Callable[[Callable[P, Coroutine[Any, Any, R]]], WorkflowFunction[P, R]]:
        """Register an ``async def`` as a durable workflow (name: its qualified name).

        ``schedule``: a six-field cron expression (seconds first); each tick starts the
        workflow once with the scheduled time (a datetime) as its argument. Ticks missed while
        no worker ran are skipped, or run late with ``catch_up=True``.

        Raises:
            ConfigurationError: after launch, a name registered twice, not an ``async def``.
            InvalidArgumentError: an invalid cron expression.
        """
        return self._registrar.workflow(
            name,
            max_recovery_attempts=max_recovery_attempts,
            timeout=timeout,
            schedule=schedule,
            catch_up=catch_up,
        )

    @overload
    def step(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> StepFunction[P, R]: ...

    @overload
    def step(self, fn: Callable[P, R], /) -> StepFunction[P, R]: ...

    @overload
    def step(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        retry: Retry | None = None,
        pivot: bool = False,
        compensation: Callable[..., Any] | None = None,
        timeout: float | None = None,
    ) -> _StepDecorator: ...

    def step(
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        retry: Retry | None = None,
        pivot: bool = False,
        compensation: Callable[..., Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Register a step (async, or sync run in a thread): its retry policy, its
        compensation (undo), whether it is the pivot (the saga's point of no return), and
        ``timeout``, the seconds one attempt may take (an async step is then cancelled; a sync
        one's thread runs on, but the attempt fails).

        Raises:
            ConfigurationError: after launch, or a name registered twice.
            InvalidArgumentError: a timeout that is not positive.
        """
        return self._registrar.step(
            fn, name=name, retry=retry, pivot=pivot, compensation=compensation, timeout=timeout
        )

    # -- life cycle -------------------------------------------------------------------------
    @property
    def executor_id(self) -> str:
        return self.engine.executor_id

    @property
    def app_version(self) -> str:
        return self._app_version or self._workflows_hash()

    @property
    def launched(self) -> bool:
        """Whether the application runs (between ``launch`` and ``shutdown``)."""
        return self.engine.launched

    @property
    def database(self) -> str:
        """Which kind of database holds the workflows: ``"postgres"`` or ``"sqlite"``."""
        return self.store.dialect

    @property
    def workflows(self) -> Mapping[str, WorkflowFunction[Any, Any]]:
        """The registered workflows, by name (read-only)."""
        return MappingProxyType(self.registry.workflows)

    @property
    def queues(self) -> Mapping[str, Queue]:
        """The declared queues, by name (read-only)."""
        return MappingProxyType(self.registry.queues)

    @property
    def webhooks(self) -> Mapping[str, WebhookDeclaration]:
        """The webhook sources declared with ``@app.webhook``, by source (read-only)."""
        return MappingProxyType(self.registry.webhooks)

    @property
    def tracer_provider(self) -> TracerProvider | None:
        """The TracerProvider given to this app (None: the global one is used)."""
        return self.tracing.provider

    async def migrate(self) -> list[str]:
        """Apply the database's pending migrations (under a lock every process shares)
        without launching; returns every migration now applied.

        Raises:
            StoreUnavailableError: the database cannot be reached.
            MigrationError: a migration failed (nothing of it is applied).
        """
        await self.store.open()
        try:
            return list((await self.store.migration_state()).applied)
        finally:
            if not self.engine.launched:
                await self.store.close()

    async def migration_state(self) -> MigrationState:
        """Which migrations the database has and which this code brings (readiness).

        Raises:
            StoreUnavailableError: the database cannot be reached.
        """
        return await self.store.migration_state()

    async def render_metrics(self) -> bytes:
        """The Prometheus exposition of this app's metrics, refreshed from the database
        (queue depths, leases) when it answers; the in-process figures otherwise."""
        with contextlib.suppress(StoreError):
            await self.metrics.refresh(self.store)
        return self.metrics.render()

    def _workflows_hash(self) -> str:
        digest = hashlib.sha256()
        for name in sorted(self.registry.workflows):
            digest.update(name.encode())
            code = getattr(self.registry.workflows[name].fn, "__code__", None)
            if code is not None:
                digest.update(code.co_code)
        return digest.hexdigest()[:16]

    async def launch(self) -> None:
        """Open the store (migrating it), then recover this executor's unfinished workflows.

        Raises:
            StoreUnavailableError: the database cannot be reached (after retrying).
            MigrationError: the schema cannot be brought up to date.
        """
        if self.engine.launched:
            return
        await self.store.open()
        if self.reads is not self.store:
            await self.reads.open()
        if isinstance(self.clock, DatabaseClock):
            await self.clock.sync()
        await self.engine.launch(self.app_version)
        if not self._gc_raised:
            self._gc_raised = raise_gc_threshold(self.settings.gc_threshold)

    async def shutdown(self, timeout: float | None = None) -> None:
        """Let running workflows continue up to ``timeout`` seconds, then stop them (they stay
        PENDING and are recovered later) and close the store."""
        if not self.engine.launched:
            return  # never launched, or already shut down
        try:
            await self.engine.shutdown(
                self.settings.shutdown_timeout if timeout is None else timeout
            )
            await self.store.close()
            if self.reads is not self.store:
                await self.reads.close()
        finally:
            if self._gc_raised:
                self._gc_raised = False
                restore_gc_threshold()

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
        """Run any function as a durable step of the current workflow (an inline step).

        Raises:
            InvalidArgumentError: no ``name`` for a callable without a qualified name.
        """
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
        undo before acting). ``fn`` may be a step or any function.

        Raises:
            NotInWorkflowError: outside a workflow.
        """
        run = require_run("app.compensate()")
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
        """The running step's context: ``idempotency_key``, ``attempt``, ``step_number``.

        Raises:
            NotInWorkflowError: outside a step.
        """
        return context.current_step()

    async def sleep(self, seconds: float) -> None:
        """Durable sleep (recorded wake-up time; recovery sleeps only what is left). Outside a
        workflow, or inside a step, a plain sleep on the app's clock.

        Raises:
            InvalidArgumentError: a negative number of seconds.
            WorkflowCancelledError: the workflow was cancelled while it slept (it stops here).
        """
        await timers.sleep(seconds, self.clock)

    async def now(self) -> dt.datetime:
        """The time (UTC), recorded inside a workflow so replays see the same instant; outside
        a workflow, the current time. Raises nothing of its own."""
        return await timers.now()

    async def random(self) -> float:
        """A random float in [0, 1), recorded inside a workflow so replays see the same number;
        outside a workflow, a fresh one. Raises nothing of its own."""
        return await timers.random()

    # -- changing running code (docs/upgrading.md) ------------------------------------------
    async def patched(self, name: str) -> bool:
        """Inside a workflow's body, where new code takes a new path: True when this execution
        takes it (a first run records a durable marker here; its replays find it), False when
        it replays a history the code before the patch recorded (a workflow started before
        the deploy: keep to the old path)::

            if await app.patched("fraud-check"):
                await fraud_check(order)

        Raises:
            NotInWorkflowError: outside a workflow's body (or inside a step).
            InvalidArgumentError: an empty name.
        """
        return await patches.patched(name)

    async def deprecate_patch(self, name: str) -> None:
        """Replaces ``if await app.patched(name):`` (keeping only the new path) once every
        workflow that could take the old path has finished: consumes the marker of histories
        that have one, records nothing. A later release may drop the call.

        Raises:
            NotInWorkflowError: outside a workflow's body (or inside a step).
            InvalidArgumentError: an empty name.
        """
        await patches.deprecate_patch(name)

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
        ``idempotency_key`` makes repeats no-ops.

        Raises:
            WorkflowNotFoundError: no such workflow.
            WorkflowFinishedError: it finished: it can never read the message.
            SerializationError: the message cannot be stored and read back.
        """
        self.engine.require_launched("send")
        await self.engine.messaging.send(workflow_id, message, topic, idempotency_key)

    async def send_to_key(
        self,
        key: str,
        message: Any,
        topic: str | None = None,
        idempotency_key: str | None = None,
        keep_seconds: float | None = None,
    ) -> KeyedDelivery:
        """Send ``message`` to the workflow holding the business key ``key``, written
        ``name:value`` for its attribute (``"order_id:42"``: the workflow started with, or
        that set, ``order_id="42"``). Several hold it: the newest unfinished one gets it. None
        does yet: the message is kept ``keep_seconds`` (default: the setting
        ``ORCHESTRATOR_PENDING_MESSAGE_SECONDS``, one day) and delivered, once, to the first
        workflow to start with (or set) that attribute in that time. The same
        ``idempotency_key`` stores it once. Inside a workflow it is a durable call. See
        docs/messaging.md.

        Returns:
            Where it went: ``workflow_id`` (delivered) or ``expires_at`` (kept until, epoch ms
            on the database clock); ``stored`` is False for a repeat.

        Raises:
            InvalidArgumentError: a key not ``name:value`` with an attribute's name, or
                ``keep_seconds`` <= 0.
            WorkflowFinishedError: the holder finished between lookup and send (rare).
            SerializationError: the message cannot be stored and read back.
        """
        self.engine.require_launched("send_to_key")
        return await self.engine.messaging.send_to_key(
            key, message, topic, idempotency_key, keep_seconds
        )

    async def send_in(
        self,
        connection: Any,
        workflow_id: str,
        message: Any,
        topic: str | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        """``send`` inside the caller's own transaction on ``connection`` (a
        ``psycopg.AsyncConnection`` or ``psycopg.Connection`` to the app's PostgreSQL
        database): the message is delivered, and its waiter woken, when that transaction
        commits, and never if it rolls back. Not committed here (in autocommit it is a plain
        send on that connection). Outside workflows only (a step may). See docs/messaging.md.

        Raises:
            ConfigurationError: the SQLite store, or a connection to another database.
            WorkflowNotFoundError: no such workflow (as the transaction sees it).
            WorkflowFinishedError: it finished: it can never read the message.
            StoreError: the caller's transaction had failed already (or another database
                error); the orchestrator's own writes are undone, a savepoint's worth.
        """
        self.engine.require_launched("send_in")
        await self.engine.messaging.send(
            workflow_id, message, topic, idempotency_key, connection=connection
        )

    def recv(
        self, topic: str | None = None, timeout: float | None = DEFAULT_TIMEOUT_SECONDS
    ) -> Awaitable[Any]:
        """Inside a workflow: consume the oldest message on ``topic`` exactly once, waiting up
        to ``timeout`` seconds (durably: a recovered workflow waits only what is left; None: no
        limit); None on timeout. Await it: ``message = await app.recv("topic")`` (it returns
        the durable call itself, so that a workflow parked here holds as little as it can).

        Raises:
            NotInWorkflowError: outside a workflow.
        """
        return self.engine.messaging.recv(topic, timeout)

    async def set_event(self, key: str, value: Any) -> None:
        """Inside a workflow: publish ``value`` under ``key`` (a later set overwrites).

        Raises:
            NotInWorkflowError: outside a workflow (or inside a step).
            InvalidArgumentError: a key with NUL, lone surrogates or over 512 characters.
            SerializationError: the value cannot be stored and read back.
        """
        await self.engine.messaging.set_event(key, value)

    async def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        """Inside a workflow: set (or overwrite) its attributes, business keys to list it by
        (name -> string or number, stored as text). A durable call: recorded as a step, so a
        replay does not write them again.

        Raises:
            NotInWorkflowError: outside a workflow (or inside a step).
            InvalidArgumentError: a name not ``[a-z][a-z0-9_]{0,62}``, a value over 256
                characters or not a string/number, or more than 20 attributes in all.
        """
        await self.engine.attributes.set_attributes(attributes)

    async def get_event(
        self, workflow_id: str, key: str, timeout: float | None = DEFAULT_TIMEOUT_SECONDS
    ) -> Any:
        """Wait for a workflow's event (e.g. a payment URL); None if it is not set within
        ``timeout`` seconds (None: no limit) or the workflow finished without setting it.

        Raises:
            WorkflowNotFoundError: no such workflow.
        """
        self.engine.require_launched("get_event")
        return await self.engine.messaging.get_event(workflow_id, key, timeout)

    async def get_events(self, workflow_id: str) -> dict[str, Any]:
        """All current events of a workflow, key -> value.

        Raises:
            WorkflowNotFoundError: no such workflow.
            ConfigurationError: the app is not launched.
        """
        self.engine.require_launched("get_events")
        return await self.engine.messaging.get_events(workflow_id)

    async def write_stream(self, key: str, value: Any) -> None:
        """Inside a workflow: append ``value`` to its stream ``key`` (progress, tokens…).

        Raises:
            NotInWorkflowError: outside a workflow (or inside a step).
            WorkflowStateError: the stream was closed.
            SerializationError: the value cannot be stored and read back.
        """
        await self.engine.messaging.write_stream(key, value)

    async def close_stream(self, key: str) -> None:
        """Inside a workflow: end its stream ``key``; readers stop after the last value.

        Raises:
            NotInWorkflowError: outside a workflow (or inside a step).
        """
        await self.engine.messaging.write_stream(key, None, close=True)

    def read_stream(self, workflow_id: str, key: str) -> AsyncIterator[Any]:
        """Iterate a workflow's stream as it is written, until closed or the workflow ends.

        Raises:
            WorkflowNotFoundError: no such workflow (when iteration begins).
            ConfigurationError: the app is not launched.
        """
        self.engine.require_launched("read_stream")
        return self.engine.messaging.read_stream(workflow_id, key)

    # -- starting workflows -------------------------------------------------------------------
    def _workflow_of(
        self, workflow: WorkflowFunction[Any, Any] | str
    ) -> WorkflowFunction[Any, Any]:
        if isinstance(workflow, str):
            return self.engine.starter.workflow_named(workflow)
        if not isinstance(workflow, WorkflowFunction):
            raise InvalidArgumentError(
                f"{workflow!r} is not a workflow: decorate it with @app.workflow()"
            )
        if self.registry.workflows.get(workflow.name) is not workflow:
            raise InvalidArgumentError(f"workflow {workflow.name!r} belongs to another app")
        return workflow

    def workflow_named(self, name: str) -> WorkflowFunction[Any, Any]:
        """The registered workflow called ``name``.

        Raises:
            NotRegisteredError: no workflow of that name (the message lists the known ones).
        """
        return self.engine.starter.workflow_named(name)

    async def start(
        self,
        workflow: WorkflowFunction[P, R] | str,
        *args: Any,
        workflow_id: str | None = NOT_GIVEN,
        queue: str | None = NOT_GIVEN,
        priority: int = NOT_GIVEN,
        dedup_id: str | None = NOT_GIVEN,
        partition_key: str | None = NOT_GIVEN,
        delay: float | None = NOT_GIVEN,
        timeout: float | None = NOT_GIVEN,
        if_duplicate: str = NOT_GIVEN,
        attributes: Mapping[str, Any] | None = NOT_GIVEN,
        subject: str | None = NOT_GIVEN,
        **kwargs: Any,
    ) -> WorkflowHandle[R]:
        """Start a workflow and return its handle at once. The id is an idempotency key: the
        same id returns the existing workflow's handle. Inside a workflow this starts a child.

        With ``queue=`` the workflow is ENQUEUED and started by whichever worker dequeues it
        first, within the queue's limits: ``priority`` (lower first, on a priority queue),
        ``dedup_id`` (one active workflow per id: DuplicateWorkflowError, or with
        ``if_duplicate="return"`` the active one's handle), ``partition_key`` (partitioned
        queues), ``delay`` (seconds before it may start). ``timeout`` (seconds) is a deadline
        after which the workflow is cancelled (a saga rolls back). ``attributes``: business
        keys to list it by (name -> string or number; docs/concepts.md). ``subject``: whose
        data it holds ("customer:c-7"); with a SubjectCodec its payloads are sealed with that
        subject's own key, which ``erase_subject`` deletes (docs/data.md).

        The options share this call's keywords with the workflow's own keyword arguments;
        ``start_with(workflow, args, kwargs, StartOptions(...))`` keeps them apart and is the
        unambiguous form.

        Raises:
            NotRegisteredError: an unknown workflow or queue name.
            InvalidArgumentError: an option's name passed that is also a parameter of the
                workflow (use ``start_with``), or invalid attributes.
            WorkflowConflictError: the id belongs to another workflow or other input.
            DuplicateWorkflowError: the dedup id is active on the queue.
            SerializationError: arguments that cannot be stored and read back.
        """
        resolved = self._workflow_of(workflow)
        options = start_options(
            resolved,
            len(args),
            workflow_id=workflow_id,
            queue=queue,
            priority=priority,
            dedup_id=dedup_id,
            partition_key=partition_key,
            delay=delay,
            timeout=timeout,
            if_duplicate=if_duplicate,
            attributes=attributes,
            subject=subject,
        )
        return await self.start_with(resolved, args, kwargs, options)

    async def start_in(
        self,
        connection: Any,
        workflow: WorkflowFunction[P, R] | str,
        *args: Any,
        workflow_id: str | None = NOT_GIVEN,
        queue: str | None = NOT_GIVEN,
        priority: int = NOT_GIVEN,
        dedup_id: str | None = NOT_GIVEN,
        partition_key: str | None = NOT_GIVEN,
        delay: float | None = NOT_GIVEN,
        timeout: float | None = NOT_GIVEN,
        if_duplicate: str = NOT_GIVEN,
        attributes: Mapping[str, Any] | None = NOT_GIVEN,
        subject: str | None = NOT_GIVEN,
        **kwargs: Any,
    ) -> WorkflowHandle[R]:
        """``start`` inside the caller's own transaction on ``connection`` (a
        ``psycopg.AsyncConnection`` or ``psycopg.Connection`` to the app's PostgreSQL
        database): the workflow exists when that transaction commits, with the caller's
        business writes, and never if it rolls back (the outbox pattern without an outbox).

        Nothing is committed here (in autocommit it is a plain start on that connection).
        The workflow is not run in this process at once: it is written PENDING with no
        executor, and on the commit's notification a worker of this app version claims and
        runs it (``queue=``: ENQUEUED, dequeued as any queued workflow). The handle's
        ``result()`` waits for it once committed. Outside workflows only (a step may).
        Options as in ``start``; see docs/queues-and-workers.md.

        Raises:
            ConfigurationError: the SQLite store, or a connection to another database.
            StoreError: the caller's transaction had failed already (or another database
                error); the orchestrator's own writes are undone, a savepoint's worth.
            And as ``start``.
        """
        resolved = self._workflow_of(workflow)
        options = start_options(  # the same options, and the same ambiguity check, as start
            resolved,
            len(args),
            workflow_id=workflow_id,
            queue=queue,
            priority=priority,
            dedup_id=dedup_id,
            partition_key=partition_key,
            delay=delay,
            timeout=timeout,
            if_duplicate=if_duplicate,
            attributes=attributes,
            subject=subject,
        )
        return await self.start_with(resolved, args, kwargs, options, connection=connection)

    async def start_with(
        self,
        workflow: WorkflowFunction[P, R] | str,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        options: StartOptions,
        *,
        trace_headers: Mapping[str, str] | None = None,
        connection: Any = None,
    ) -> WorkflowHandle[R]:
        """``start`` with the workflow's arguments and the start options kept apart: the
        unambiguous form (a workflow may have a parameter named ``queue`` or ``timeout``), e.g.
        ``app.start_with(ship, (), {"queue": "fragile"}, StartOptions(queue="slow"))``.
        ``trace_headers``: an incoming
        request's headers, whose ``traceparent`` becomes the workflow's parent (unless a
        server span is current already). ``connection``: start in the caller's transaction,
        as ``start_in``. ``handle.info`` is the workflow as stored by this start (None when
        it existed already; with ``connection``, as written, before the caller's commit)."""
        resolved = self._workflow_of(workflow)
        with self.tracing.incoming(trace_headers or {}):
            handle: WorkflowHandle[R] = await self.engine.start_workflow(
                resolved, tuple(args), kwargs, options, connection
            )
        return handle

    def retrieve(self, workflow_id: str) -> WorkflowHandle[Any]:
        """A handle for an existing workflow (``status()`` raises if there is none)."""
        return WorkflowHandle(self.engine, workflow_id)

    # -- the operator's calls (recorded as steps when made inside a workflow) ----------------
    async def cancel(
        self,
        workflow_id: str,
        *,
        compensate: bool = False,
        children: bool = True,
        reason: str | None = None,
        by: str | None = None,
    ) -> None:
        """Cancel a workflow: it stops at its next durable call and ends CANCELLED. With
        ``compensate=True`` a saga first rolls back its completed steps (then COMPENSATED).
        Its running child workflows (and theirs) are cancelled the same way, unless
        ``children=False``. Audited (``list_audit``) as ``by`` (default: who acts, see
        ``orchestrator.audit``) with the ``reason``.

        Raises:
            WorkflowNotFoundError: no such workflow.
            WorkflowFinishedError: it has finished.
            WorkflowStateError: it is rolling back (a rollback is not cancelled).
        """
        await self._admin.cancel(
            workflow_id, compensate=compensate, children=children, reason=reason, by=by
        )

    async def resume(
        self, workflow_id: str, *, reason: str | None = None, by: str | None = None
    ) -> WorkflowHandle[Any]:
        """Run a CANCELLED, ERROR or MAX_RECOVERY_ATTEMPTS_EXCEEDED workflow again from its last
        checkpoint (failed steps at the end of its history are retried).

        Raises:
            WorkflowNotFoundError, WorkflowFinishedError (not resumable), NotRegisteredError.
        """
        return await self._admin.resume(workflow_id, reason=reason, by=by)

    async def fork(
        self,
        workflow_id: str,
        from_step: int = 1,
        *,
        new_workflow_id: str | None = None,
        app_version: str | None = None,
        reason: str | None = None,
        by: str | None = None,
    ) -> WorkflowHandle[Any]:
        """A new workflow with the same input that reuses steps before ``from_step``. With
        ``app_version`` (another release's version), a live worker of that version runs it
        (not this process): fork an old saga onto the new code, or back.

        Raises:
            WorkflowNotFoundError, InvalidArgumentError (from_step < 1, an empty version),
            WorkflowConflictError (the new id is taken).
        """
        return await self._admin.fork(
            workflow_id,
            from_step,
            new_workflow_id=new_workflow_id,
            app_version=app_version,
            reason=reason,
            by=by,
        )

    async def list_versions(self) -> list[VersionInfo]:
        """Every application version that has run (by a worker's launch, or on a workflow),
        most recently seen first: first and last seen, live workers, unfinished workflows."""
        return await self._admin.list_versions()

    async def stranded(self) -> dict[str | None, int]:
        """Unfinished workflows (PENDING, COMPENSATING) of application versions that no live
        worker serves, by version: nobody runs them until a worker of their version comes
        back or they are moved (``move_workflows``, ``upgrade_check(adopt=True)``)."""
        return await self._admin.stranded()

    async def upgrade_check(
        self, *, adopt: bool = False, workflow_ids: list[str] | None = None
    ) -> list[ReplayVerdict]:
        """Replay every unfinished workflow's recorded history (or only ``workflow_ids``')
        against this application's code, executing nothing, and say for each whether this
        code can carry it on: ``compatible``, ``needs_patch`` (the step where it diverges, the
        recorded and the called name) or ``unknown_workflow``. Run it with the new release's
        code before deploying it (``saga upgrade-check MODULE:ATTR``). Works launched or not
        (not launched: the database is opened for the check and closed after).

        ``adopt=True`` then moves the compatible workflows of other versions to this
        application's version (``app_version``), except those a live worker runs now (a
        rolling deploy's old workers finish theirs): this version's workers take them over.

        Raises:
            StoreUnavailableError: the database cannot be reached.
        """
        opened = not self.engine.launched
        if opened:
            await self.store.open()
        try:
            return await self._admin.upgrade_check(
                app_version=self.app_version, adopt=adopt, workflow_ids=workflow_ids
            )
        finally:
            if opened and not self.engine.launched:
                await self.store.close()

    async def move_workflows(self, workflow_ids: list[str], app_version: str) -> list[str]:
        """Give unfinished workflows another application version; a live worker of that
        version takes each over from its last checkpoint. Only move a workflow to code that
        can replay its history (``upgrade_check`` tells). Workflows that a live worker runs
        now, finished or unknown ones are left alone. Returns the ids moved.

        Raises:
            InvalidArgumentError: an empty version, or ids that are not a list of strings.
        """
        return await self._admin.move_workflows(workflow_ids, app_version)

    async def retry_compensation(
        self, workflow_id: str, *, reason: str | None = None, by: str | None = None
    ) -> WorkflowHandle[Any]:
        """Retry the failed compensation of a COMPENSATION_FAILED saga and finish its rollback.

        Raises:
            WorkflowStateError: it is not COMPENSATION_FAILED.
        """
        return await self._admin.retry_compensation(workflow_id, reason=reason, by=by)

    async def skip_compensation(
        self, workflow_id: str, *, step: int, reason: str, by: str | None = None
    ) -> WorkflowHandle[Any]:
        """Give up undoing forward step ``step`` of a COMPENSATION_FAILED saga (the person
        ``by`` and the ``reason`` are recorded in its history) and finish the rollback.

        Raises:
            WorkflowStateError: it is not COMPENSATION_FAILED.
            InvalidArgumentError: no reason, or no failed compensation of that step.
        """
        return await self._admin.skip_compensation(workflow_id, step=step, reason=reason, by=by)

    async def list_workflows(
        self,
        *,
        status: WorkflowStatus | str | list[WorkflowStatus] | None = None,
        name: str | None = None,
        queue: str | None = None,
        parent_workflow_id: str | None = None,
        created_after: dt.datetime | None = None,
        created_before: dt.datetime | None = None,
        app_version: str | None = None,
        stranded: bool = False,
        id_prefix: str | None = None,
        attributes: dict[str, str] | None = None,
        limit: int = 100,
        offset: int = 0,
        ascending: bool = False,
    ) -> list[WorkflowInfo]:
        """Workflows matching the filters, newest first (unless ``ascending``).
        ``attributes``: only workflows having all of these (name -> value, equality).
        ``stranded=True``: only unfinished workflows (PENDING, COMPENSATING) of application
        versions no live worker serves (see docs/upgrading.md). ``id_prefix``: ids starting
        with it. For deep listings use ``list_workflows_page`` (an offset costs its depth).

        Raises:
            InvalidArgumentError: an unknown status, or limit/offset out of range.
        """
        return await self._admin.list_workflows(
            status=status,
            name=name,
            queue=queue,
            parent_workflow_id=parent_workflow_id,
            created_after=created_after,
            created_before=created_before,
            app_version=app_version,
            stranded=stranded,
            id_prefix=id_prefix,
            attributes=attributes,
            limit=limit,
            offset=offset,
            ascending=ascending,
        )

    async def list_workflows_page(
        self,
        filters: WorkflowFilter | None = None,
        *,
        cursor: str | None = None,
        limit: int = 50,
    ) -> WorkflowPage:
        """One page of the workflows matching ``filters``, newest first; its
        ``next_cursor``, passed back as ``cursor``, gives the next page (None: no more).
        Every page costs the same however deep (keyset pagination).

        Raises:
            InvalidArgumentError: a bad filter, limit or cursor.
        """
        return await self._admin.list_workflows_page(
            filters or WorkflowFilter(), cursor=cursor, limit=limit
        )

    async def count_workflows(
        self, filters: WorkflowFilter | None = None
    ) -> dict[WorkflowStatus, int]:
        """How many workflows match ``filters``, per status (every status; zeros too)."""
        return await self._admin.count_workflows(filters or WorkflowFilter())

    async def rollback_plan(self, workflow_id: str) -> RollbackPlan:
        """What this saga would undo if it failed now: the compensations a rollback would
        run, in order, each with the forward step it undoes and the recorded input (the
        step's arguments and result) it would receive. ``applies`` is False once the saga has
        ended or passed its pivot. Reads only.

        Raises:
            WorkflowNotFoundError: no such workflow.
        """
        return await self._admin.rollback_plan(workflow_id)

    async def list_audit(
        self,
        *,
        workflow_id: str | None = None,
        action: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> tuple[list[AuditEntry], str | None]:
        """The operator audit log, newest first: every cancel, resume, retry or skip of a
        compensation, fork, bulk action, move and schedule change, from Python, HTTP, the
        console or the CLI, with who, when, what and why. Returns a page and the cursor of
        the next one (None: no more)."""
        return await self._admin.list_audit(
            workflow_id=workflow_id, action=action, cursor=cursor, limit=limit
        )

    async def bulk_cancel(
        self,
        filters: WorkflowFilter,
        *,
        dry_run: bool = False,
        compensate: bool = False,
        reason: str | None = None,
        by: str | None = None,
    ) -> BulkResult:
        """Cancel every PENDING or ENQUEUED workflow ``filters`` matches (with their
        children; ``compensate``: roll sagas back). ``dry_run=True`` only counts them."""
        return await self._admin.bulk(
            "cancel", filters, dry_run=dry_run, compensate=compensate, reason=reason, by=by
        )

    async def bulk_resume(
        self,
        filters: WorkflowFilter,
        *,
        dry_run: bool = False,
        reason: str | None = None,
        by: str | None = None,
    ) -> BulkResult:
        """Resume every CANCELLED, ERROR or MAX_RECOVERY_ATTEMPTS_EXCEEDED workflow
        ``filters`` matches. ``dry_run=True`` only counts them."""
        return await self._admin.bulk("resume", filters, dry_run=dry_run, reason=reason, by=by)

    async def bulk_retry_compensation(
        self,
        filters: WorkflowFilter,
        *,
        dry_run: bool = False,
        reason: str | None = None,
        by: str | None = None,
    ) -> BulkResult:
        """Retry the compensation of every COMPENSATION_FAILED saga ``filters`` matches.
        ``dry_run=True`` only counts them."""
        return await self._admin.bulk(
            "retry_compensation", filters, dry_run=dry_run, reason=reason, by=by
        )

    async def delete_workflow(
        self,
        workflow_id: str,
        *,
        children: bool = True,
        reason: str | None = None,
        by: str | None = None,
    ) -> list[str]:
        """Delete a finished workflow and (unless ``children=False``) its child workflows
        at any depth: their rows, steps, messages, events and streams, in one transaction.
        The id can then start a new workflow. Audited (``delete``); the audit log keeps its
        entries about them. Returns the ids deleted (the workflow's first).

        Raises:
            WorkflowNotFoundError: no such workflow.
            WorkflowStateError: it (or a child) is still running or queued: cancel it first.
        """
        return await self._admin.delete(workflow_id, children=children, reason=reason, by=by)

    async def erase_subject(
        self, subject: str, *, reason: str | None = None, by: str | None = None
    ) -> bool:
        """Crypto-shred a subject: delete its data key (``SubjectCodec``), so every payload of
        its workflows (inputs, outputs, steps, messages, events, streams) reads as
        ``{"$undecodable": "the data key of subject ... was erased"}`` everywhere, and running
        one raises PayloadUndecodableError; statuses, step names, timings, attributes and the
        audit stay readable. Audited (``erase_subject``). A later start with the subject gets a
        new key. Returns False (a no-op, still audited) when the subject had no key.
        """
        return await self._admin.erase_subject(subject, reason=reason, by=by)

    async def rewrap_data_keys(
        self, *, batch_size: int = 500, reason: str | None = None, by: str | None = None
    ) -> int:
        """After a master-key rotation (a new current key in the ``SubjectCodec``'s keyring):
        wrap every subject's data key that is not under the current master key again under
        it, ``batch_size`` keys per short transaction, so the old master key can then leave
        the keyring (docs/data.md, "Retiring a master key"). No payload changes (the data keys
        stay the same); safe to run from several processes at once, and to run again (it
        finds only what is left). Audited (``rewrap_data_keys``). Returns how many it
        rewrapped.

        Raises:
            ConfigurationError: the codec has no SubjectCodec.
            PayloadUndecodableError: some keys could not be unwrapped (their master key is
                not in the keyring, or the row is corrupt); raised after every other key was
                rewrapped, naming them and what to do.
        """
        return await self._admin.rewrap_data_keys(
            self._subjects, batch_size=batch_size, reason=reason, by=by
        )

    async def bulk_delete(
        self,
        filters: WorkflowFilter,
        *,
        dry_run: bool = False,
        reason: str | None = None,
        by: str | None = None,
    ) -> BulkResult:
        """Delete every finished workflow ``filters`` matches (statuses narrowed to final
        ones), each with its finished children. ``dry_run=True`` only counts them."""
        return await self._admin.bulk("delete", filters, dry_run=dry_run, reason=reason, by=by)

    async def sweep_retention(self) -> dict[WorkflowStatus, int]:
        """Run one retention sweep now (workers also run it on an interval): delete the
        finished workflows older than their status's retention; how many, per status."""
        self.engine.require_launched("sweep_retention")
        return await self.engine.retention.sweep()

    async def list_steps(self, workflow_id: str) -> list[StepInfo]:
        """Every recorded step (forward steps and compensations) of a workflow, in order.

        Raises:
            WorkflowNotFoundError: no such workflow.
        """
        return await self._admin.list_steps(workflow_id)

    async def export_history(self, workflow_id: str) -> dict[str, Any]:
        """A workflow's history as a JSON-able document: its record and every step record,
        as stored (``saga workflows export ID``), for ``orchestrator.testing.replay`` to
        replay against other code. The values are the application's data, not redacted.
        Works launched or not (not launched: the database is opened for it and closed after).

        Raises:
            WorkflowNotFoundError: no such workflow.
            StoreUnavailableError: the database cannot be reached.
        """
        opened = not self.engine.launched
        if opened:
            await self.store.open()
        try:
            return await self._admin.export_history(workflow_id)
        finally:
            if opened and not self.engine.launched:
                await self.store.close()

    async def list_queued(
        self, queue: str | None = None, *, limit: int = 100
    ) -> list[WorkflowInfo]:
        """Workflows waiting on a queue (or on any queue), oldest first.

        Raises:
            ConfigurationError: the app is not launched.
        """
        return await self._admin.list_queued(queue, limit=limit)

    async def queue_stats(self, queue: str | None = None) -> list[QueueStats]:
        """Depth, running count and starts in the last minute, per queue."""
        return await self._admin.queue_stats(queue)

    async def create_schedule(
        self,
        name: str,
        workflow: WorkflowFunction[Any, Any] | str,
        cron: str,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        catch_up: bool = False,
        replace: bool = False,
    ) -> ScheduleInfo:
        """Store a schedule that any worker runs: each tick of ``cron`` (six fields, seconds
        first) starts ``workflow(scheduled_time, *args, **kwargs)`` once.

        Raises:
            InvalidArgumentError: a bad name, cron expression or arguments.
            WorkflowConflictError: the name is taken (unless ``replace``).
        """
        return await self._admin.create_schedule(
            name, workflow, cron, args, kwargs, catch_up=catch_up, replace=replace
        )

    async def pause_schedule(
        self, name: str, *, reason: str | None = None, by: str | None = None
    ) -> ScheduleInfo:
        """Stop starting ticks of a schedule until resumed.

        Raises:
            NotRegisteredError: no schedule of that name.
        """
        return await self._admin.pause_schedule(name, reason=reason, by=by)

    async def resume_schedule(
        self, name: str, *, reason: str | None = None, by: str | None = None
    ) -> ScheduleInfo:
        """Start ticking a paused schedule again, from now on (missed ticks are skipped unless
        the schedule catches up).

        Raises:
            NotRegisteredError: no schedule of that name.
        """
        return await self._admin.resume_schedule(name, reason=reason, by=by)

    async def delete_schedule(
        self, name: str, *, reason: str | None = None, by: str | None = None
    ) -> None:
        """Delete a schedule; the workflows it started stay.

        Raises:
            NotRegisteredError: no schedule of that name.
        """
        await self._admin.delete_schedule(name, reason=reason, by=by)

    async def trigger_schedule(
        self, name: str, *, reason: str | None = None, by: str | None = None
    ) -> WorkflowHandle[Any]:
        """Start one run of a schedule now, besides its ticks (its time argument: now).

        Raises:
            NotRegisteredError: no schedule of that name, or its workflow is not this app's.
        """
        return await self._admin.trigger_schedule(name, reason=reason, by=by)

    def next_ticks(self, schedule: ScheduleInfo, count: int = 5) -> list[dt.datetime]:
        """A schedule's next ``count`` ticks from now (none while it is paused)."""
        return self._admin.next_ticks(schedule, count)

    async def list_schedules(self) -> list[ScheduleInfo]:
        """Every stored schedule (declared and created)."""
        return await self._admin.list_schedules()

    async def list_workers(self) -> list[WorkerInfo]:
        """Workers registered in the database, with their leases."""
        return await self._admin.list_workers()
