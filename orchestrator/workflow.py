"""Workflow functions, handles and the read-only views of workflows and their steps."""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Protocol, TypeVar

from orchestrator.serialization import Signature, error_summary
from orchestrator.store.base import StepRecord, WorkflowRecord
from orchestrator.types import StepKind, WorkflowStatus

if TYPE_CHECKING:
    from orchestrator.queues import Queue
    from orchestrator.step import StepFunction

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

DEFAULT_MAX_RECOVERY_ATTEMPTS = 100


def _time(ms: int | None) -> dt.datetime | None:
    return None if ms is None else dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def _json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


@dataclass(frozen=True, slots=True)
class StartOptions:
    """How to start a workflow: its id and where it runs."""

    workflow_id: str | None = None
    queue: str | None = None
    priority: int = 0
    dedup_id: str | None = None
    partition_key: str | None = None
    delay: float | None = None
    timeout: float | None = None
    if_duplicate: str = "raise"  # a dedup_id active on the queue: "raise" or "return" its handle


@dataclass(frozen=True, slots=True)
class WorkflowInfo:
    """A workflow's status as stored; ``input``/``output`` are plain JSON values."""

    workflow_id: str
    name: str
    status: WorkflowStatus
    created_at: dt.datetime
    updated_at: dt.datetime
    error: str | None
    error_type: str | None
    input: Any
    output: Any
    executor_id: str | None
    app_version: str | None
    queue_name: str | None
    parent_workflow_id: str | None
    recovery_attempts: int
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    deadline: dt.datetime | None

    @classmethod
    def from_record(cls, record: WorkflowRecord) -> WorkflowInfo:
        summary = error_summary(record.error)
        return cls(
            workflow_id=record.workflow_id,
            name=record.name,
            status=record.status,
            created_at=_time(record.created_at) or dt.datetime.now(dt.UTC),
            updated_at=_time(record.updated_at) or dt.datetime.now(dt.UTC),
            error=summary[1] if summary else None,
            error_type=summary[0] if summary else None,
            input=_json(record.input),
            output=_json(record.output),
            executor_id=record.executor_id,
            app_version=record.app_version,
            queue_name=record.queue_name,
            parent_workflow_id=record.parent_workflow_id,
            recovery_attempts=record.recovery_attempts,
            started_at=_time(record.started_at),
            finished_at=_time(record.finished_at),
            deadline=_time(record.deadline_ms),
        )


@dataclass(frozen=True, slots=True)
class StepInfo:
    """One recorded durable call of a workflow, for reading a saga's history top to bottom."""

    workflow_id: str
    step_number: int
    name: str
    kind: StepKind
    status: str  # "SUCCESS" or "ERROR"
    output: Any
    error: str | None
    error_type: str | None
    attempts: int
    child_workflow_id: str | None
    compensation: str | None
    compensates_step: int | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None

    @property
    def idempotency_key(self) -> str:
        return f"{self.workflow_id}:{self.step_number}"

    @classmethod
    def from_record(cls, record: StepRecord) -> StepInfo:
        summary = error_summary(record.error)
        return cls(
            workflow_id=record.workflow_id,
            step_number=record.step_number,
            name=record.name,
            kind=record.kind,
            status="ERROR" if record.error is not None else "SUCCESS",
            output=_json(record.output),
            error=summary[1] if summary else None,
            error_type=summary[0] if summary else None,
            attempts=record.attempts,
            child_workflow_id=record.child_workflow_id,
            compensation=record.compensation,
            compensates_step=record.compensates_step,
            started_at=_time(record.started_at),
            finished_at=_time(record.finished_at),
        )


class Engine(Protocol):
    """What workflow functions and handles need from the engine (see executor.Engine)."""

    async def start_workflow(
        self,
        workflow: WorkflowFunction[Any, Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        options: StartOptions,
    ) -> WorkflowHandle[Any]: ...

    async def wait_result(self, workflow_id: str, timeout: float | None) -> Any: ...

    async def workflow_info(self, workflow_id: str) -> WorkflowInfo: ...


class WorkflowHandle(Generic[R_co]):
    """A reference to a started workflow: wait for its result or read its status."""

    __slots__ = ("_engine", "workflow_id")

    def __init__(self, engine: Engine, workflow_id: str) -> None:
        self._engine = engine
        self.workflow_id = workflow_id

    async def result(self, timeout: float | None = None) -> R_co:
        """Wait for the workflow to finish and return its output, or raise its error.

        Raises:
            WorkflowTimeoutError: not finished within ``timeout`` seconds.
            WorkflowCancelledError: it was cancelled.
            WorkflowFailedError: it failed and the original error type cannot be rebuilt, or a
                saga compensated (the triggering error's type and message are attached).
        """
        value: R_co = await self._engine.wait_result(self.workflow_id, timeout)
        return value

    async def status(self) -> WorkflowInfo:
        """The workflow's current stored status."""
        return await self._engine.workflow_info(self.workflow_id)

    def __repr__(self) -> str:
        return f"WorkflowHandle({self.workflow_id!r})"


class WorkflowFunction(Generic[P, R]):
    """A registered ``async def`` workflow. Awaiting a call runs it to completion durably."""

    def __init__(
        self,
        fn: Callable[P, Coroutine[Any, Any, R]],
        *,
        name: str,
        engine: Engine,
        max_recovery_attempts: int | None,
        timeout: float | None,
        schedule: str | None = None,
        catch_up: bool = False,
    ) -> None:
        self.fn = fn
        self.name = name
        self.signature = Signature(fn)
        self.max_recovery_attempts = max_recovery_attempts
        self.timeout = timeout
        self.schedule = schedule
        self.catch_up = catch_up
        self._engine = engine
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Awaitable[R]:
        return self._run(args, kwargs)

    async def _run(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        handle = await self._engine.start_workflow(self, args, kwargs, StartOptions())
        result: R = await handle.result()
        return result

    def __repr__(self) -> str:
        return f"<workflow {self.name}>"


@dataclass(frozen=True)
class WebhookDeclaration:
    """A webhook source declared with ``@app.webhook``; the HTTP service verifies and serves
    it (``orchestrator.http.webhooks.WebhookSource`` has the same fields)."""

    source: str
    secrets: str | tuple[str, ...] = field(repr=False)
    scheme: Any  # an orchestrator.http.signatures scheme (the engine does not import http)
    handler: Callable[..., Any]
    payload_model: type[Any] | None = None
    tolerance_seconds: float = 300.0


class Registry:
    """Workflows and steps of one application, by name; closed once the app launches."""

    def __init__(self) -> None:
        self.workflows: dict[str, WorkflowFunction[Any, Any]] = {}
        self.steps: dict[str, StepFunction[Any, Any]] = {}
        self.compensations: dict[str, StepFunction[Any, Any]] = {}
        self.queues: dict[str, Queue] = {}
        self.webhooks: dict[str, WebhookDeclaration] = {}
