"""Workflow functions, their handles and start options."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, Protocol, TypeVar

from orchestrator.errors import InvalidArgumentError
from orchestrator.serialization import Signature
from orchestrator.store.base import WorkflowRecord
from orchestrator.views import WorkflowInfo

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

DEFAULT_MAX_RECOVERY_ATTEMPTS = 100


@dataclass(frozen=True, slots=True)
class StartOptions:
    """How to start a workflow: its id, where it runs and its attributes. With
    ``app.start_with(workflow, args, kwargs, StartOptions(...))`` these never mix with the
    workflow's own keyword arguments."""

    workflow_id: str | None = None
    queue: str | None = None
    priority: int = 0
    dedup_id: str | None = None
    partition_key: str | None = None
    delay: float | None = None
    timeout: float | None = None
    if_duplicate: str = "raise"  # a dedup_id active on the queue: "raise" or "return" its handle
    attributes: Mapping[str, Any] | None = None  # business keys (engine/attributes.py)
    # Whose data this is ("customer:c-7"): with a SubjectCodec its payloads are sealed with that
    # subject's data key (app.erase_subject); stored as the reserved "subject" attribute.
    # A child workflow without one takes its parent's (when a codec is configured).
    subject: str | None = None


class _NotGiven:
    """The default of ``app.start``'s options: tells "not passed" from an explicit value."""

    def __repr__(self) -> str:
        return "<default>"


NOT_GIVEN: Any = _NotGiven()
OPTION_NAMES = frozenset(field.name for field in dataclasses.fields(StartOptions))


def start_options(
    workflow: WorkflowFunction[Any, Any], positional: int = 0, **given: Any
) -> StartOptions:
    """The StartOptions of ``app.start``'s keyword options (NOT_GIVEN: the default). A name
    passed that is also a parameter of the workflow is ambiguous (meant for the workflow, or
    as the option?): InvalidArgumentError, never a silent choice; unless ``positional``
    arguments already give that parameter its value (then the name can only be the option)."""
    passed = {name: value for name, value in given.items() if value is not NOT_GIVEN}
    clash = sorted(workflow.option_parameters.intersection(passed))
    if clash and positional:
        bound = [
            name
            for name, parameter in inspect.signature(workflow.fn).parameters.items()
            if parameter.kind
            in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        ][:positional]
        clash = [name for name in clash if name not in bound]
    if clash:
        names = ", ".join(repr(name) for name in clash)
        raise InvalidArgumentError(
            f"workflow {workflow.name!r} has a parameter named {names}, which is also an option"
            " of app.start(): ambiguous. Use app.start_with(workflow, args, kwargs,"
            " StartOptions(...)) to keep the workflow's arguments and the start options apart.",
            parameters=clash,
        )
    return StartOptions(**passed)


class WorkflowStarter(Protocol):
    """What workflow functions and handles need from the engine (core.Engine provides it)."""

    async def start_workflow(
        self,
        workflow: WorkflowFunction[Any, Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        options: StartOptions,
    ) -> WorkflowHandle[Any]: ...

    def wait_result(self, workflow_id: str, timeout: float | None) -> Awaitable[Any]: ...

    async def workflow_info(self, workflow_id: str) -> WorkflowInfo: ...


class WorkflowHandle(Generic[R_co]):
    """A reference to a started workflow: wait for its result or read its status."""

    __slots__ = ("_attributes", "_created", "_engine", "_info", "workflow_id")

    def __init__(self, engine: WorkflowStarter, workflow_id: str) -> None:
        self._engine = engine
        self.workflow_id = workflow_id
        self._created: WorkflowRecord | None = None
        self._attributes: dict[str, str] | None = None
        self._info: WorkflowInfo | None = None

    @property
    def info(self) -> WorkflowInfo | None:
        """The workflow as stored when this handle's start created it (None otherwise): what
        the start answered, without reading it back. ``status()`` reads the current one."""
        if self._info is None and self._created is not None:
            # Built when asked: a start that nobody asks about decodes nothing.
            self._info = WorkflowInfo.from_record(self._created, self._attributes)
        return self._info

    def created(self, record: WorkflowRecord, attributes: dict[str, str] | None = None) -> None:
        """Remember the row (and attributes) this handle's start inserted (``info``)."""
        self._created = record
        self._attributes = attributes

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
        engine: WorkflowStarter,
        max_recovery_attempts: int | None,
        timeout: float | None,
        schedule: str | None = None,
        catch_up: bool = False,
    ) -> None:
        self.fn = fn
        self.name = name
        self.signature = Signature(fn)
        # Its parameters that app.start() would take as its own options (start_options).
        self.option_parameters = frozenset(
            name
            for name, p in self.signature.signature.parameters.items()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and name in OPTION_NAMES
        )
        self.input_what = f"the input of workflow {name!r}"  # (what a size error names)
        self.output_what = f"the output of workflow {name!r}"
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
