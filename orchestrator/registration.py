"""Declaring an application's workflows, steps, compensations, queues and webhooks (before
launch): the Orchestrator's decorators, behind its methods."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, ParamSpec, Protocol, TypeVar, overload

from orchestrator.engine.core import Engine
from orchestrator.engine.registry import Registry
from orchestrator.engine.steps import StepFunction
from orchestrator.engine.workflows import DEFAULT_MAX_RECOVERY_ATTEMPTS, WorkflowFunction
from orchestrator.errors import ConfigurationError
from orchestrator.queues import Queue
from orchestrator.retry import Retry
from orchestrator.scheduler import check_cron
from orchestrator.webhooks import WebhookDeclaration

P = ParamSpec("P")
R = TypeVar("R")
H = TypeVar("H", bound=Callable[..., Any])


class _StepDecorator(Protocol):
    """What ``@app.step(...)`` returns: async functions give steps of their awaited type."""

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> StepFunction[P, R]: ...

    @overload
    def __call__(self, fn: Callable[P, R], /) -> StepFunction[P, R]: ...


class Registrar:
    """Fills a Registry; refuses once the engine is launched (every declaration is made at
    import time, so every process of a fleet knows the same names)."""

    def __init__(self, registry: Registry, engine: Engine) -> None:
        self.registry = registry
        self.engine = engine

    # -- registration -----------------------------------------------------------------------
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
        Every worker that declares it dequeues from it (see orchestrator.queues.Queue)."""
        self._check_open_for_registration("queue", name)
        if name in self.registry.queues:
            raise ConfigurationError(f"a queue named {name!r} is already declared")
        declared = Queue(
            name,
            concurrency=concurrency,
            worker_concurrency=worker_concurrency,
            rate_limit=rate_limit,
            priority=priority,
            partitioned=partitioned,
            dequeue=dequeue,
        )
        self.registry.queues[name] = declared
        return declared

    def webhook(
        self,
        source: str,
        *,
        secret: str | Sequence[str],
        scheme: Any,
        payload: type[Any] | None = None,
        tolerance_seconds: float = 300.0,
    ) -> Callable[[H], H]:
        """Declare a webhook source, served by the HTTP service at ``POST /webhooks/{source}``.

        The decorated handler gets a verified ``orchestrator.http.webhooks.Delivery`` and
        returns ``Send(workflow_id, topic, message)``, ``Start(workflow_name, input)`` or None
        (acknowledge and ignore); it may be async. Example::

            @app.webhook("payments", secret=os.environ["PAYMENTS_WHSEC"], scheme=StandardWebhooks())
            def payment_event(delivery: Delivery) -> Send:
                return Send(delivery.payload["order_id"], "payment", delivery.payload)

        Args:
            source: the path segment (unique per application).
            secret: the signing secret, or several during a key rotation.
            scheme: ``StandardWebhooks()``, ``Stripe()``, ``GitHub()`` or
                ``HmacSha256(header=...)`` from ``orchestrator.http``.
            payload: a pydantic model the JSON payload must fit (422 otherwise).
            tolerance_seconds: the replay window of timestamped schemes (±).
        """
        self._check_open_for_registration("webhook source", source)
        if source in self.registry.webhooks:
            raise ConfigurationError(f"a webhook source named {source!r} is already declared")
        if tolerance_seconds <= 0:
            raise ConfigurationError("tolerance_seconds must be > 0")
        secrets = secret if isinstance(secret, str) else tuple(secret)

        def register(handler: H) -> H:
            if not callable(handler):
                raise ConfigurationError(f"@app.webhook({source!r}) decorates a function")
            self.registry.webhooks[source] = WebhookDeclaration(
                source, secrets, scheme, handler, payload, tolerance_seconds
            )
            return handler

        return register

    def _check_open_for_registration(self, kind: str, name: str) -> None:
        if self.engine.launched:
            raise ConfigurationError(
                f"cannot register {kind} {name!r} after launch: define every workflow and step "
                "at import time, before `async with app` / `app.launch()`."
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
        no worker ran are skipped, or run late with ``catch_up=True``."""
        if schedule is not None:
            check_cron(schedule)

        def register(fn: Callable[P, Coroutine[Any, Any, R]]) -> WorkflowFunction[P, R]:
            workflow_name = name or fn.__qualname__
            if not inspect.iscoroutinefunction(fn):
                raise ConfigurationError(
                    f"workflow {workflow_name!r} must be an `async def` function"
                )
            self._check_open_for_registration("workflow", workflow_name)
            if workflow_name in self.registry.workflows:
                raise ConfigurationError(
                    f"a workflow named {workflow_name!r} is already registered"
                )
            workflow = WorkflowFunction(
                fn,
                name=workflow_name,
                engine=self.engine,
                max_recovery_attempts=max_recovery_attempts,
                timeout=timeout,
                schedule=schedule,
                catch_up=catch_up,
            )
            self.registry.workflows[workflow_name] = workflow
            return workflow

        return register

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
        """Register a step (async, or sync run in a thread) with an optional retry policy,
        compensation (undo), pivot flag (the saga's point of no return) and per-attempt
        timeout in seconds."""

        def register(function: Callable[..., Any]) -> StepFunction[Any, Any]:
            step_name = name or function.__qualname__
            self._check_open_for_registration("step", step_name)
            if step_name in self.registry.steps:
                raise ConfigurationError(f"a step named {step_name!r} is already registered")
            step: StepFunction[Any, Any] = StepFunction(
                function,
                name=step_name,
                retry=retry or Retry(),
                pivot=pivot,
                timeout=timeout,
                register_compensation=self._register_compensation,
            )
            self.registry.steps[step_name] = step
            if compensation is not None:
                step.compensation(compensation)
            return step

        return register(fn) if fn is not None else register

    def _register_compensation(self, compensation: StepFunction[Any, Any]) -> None:
        self._check_open_for_registration("compensation", compensation.name)
        self.registry.compensations[compensation.name] = compensation
