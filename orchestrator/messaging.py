"""send/recv, set_event/get_event and streams: durable messages between workflows and the world.

Waiting costs no thread and no connection: a waiter subscribes to the in-process fan-out of
store notifications (LISTEN/NOTIFY on PostgreSQL, commit hooks on SQLite), re-reads the table
when woken, and otherwise sleeps until its timeout. A lost notification (the listening
connection dropped) wakes every waiter on reconnect, so none waits out its whole timeout.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from orchestrator import context
from orchestrator.clock import Clock
from orchestrator.errors import InvalidArgumentError, WorkflowNotFoundError, WorkflowStateError
from orchestrator.executor import WorkflowRun
from orchestrator.notifications import Waiters
from orchestrator.serialization import check_key, decode, encode
from orchestrator.store.base import (
    NOTIFY_EVENT,
    NOTIFY_MESSAGE,
    NOTIFY_STREAM,
    NOTIFY_WORKFLOW,
    SEPARATOR,
    StepRecord,
    Store,
)
from orchestrator.types import StepKind

DEFAULT_TIMEOUT_SECONDS = 60.0
# SQLite's other processes (a CLI, a second app on the same file) cannot notify this one.
_POLL_SECONDS = {"sqlite": 2.0}
_RECV_DEADLINE = "recv.deadline"
_TIMEOUT = object()  # recv's loop timed out (a message may itself be None)
_DESTINATION = "orchestrator.message.destination"
_TOPIC = "orchestrator.message.topic"
_TIMED_OUT = "orchestrator.recv.timed_out"


def _topic(topic: str | None) -> str:
    if topic is None:
        return ""
    return check_key(topic, "topic", empty=True)


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and timeout < 0:
        raise InvalidArgumentError(f"timeout must be >= 0 seconds, got {timeout}")


def _check_key(key: object, what: str) -> None:
    check_key(key, what)


def _durable_run() -> WorkflowRun | None:
    current = context.current()
    if current is None or current.step is not None:
        return None
    return current.run


class Messaging:
    """The messaging half of the engine; given the store, clock and waiters it uses."""

    def __init__(self, store: Store, clock: Clock, waiters: Waiters) -> None:
        self.store = store
        self.clock = clock
        self.waiters = waiters
        self.poll_seconds = _POLL_SECONDS.get(store.dialect)

    def _wait_seconds(self, remaining_ms: float | None) -> float | None:
        remaining = None if remaining_ms is None else max(remaining_ms, 0) / 1000
        if self.poll_seconds is None:
            return remaining
        return self.poll_seconds if remaining is None else min(remaining, self.poll_seconds)

    def _wake(self, kind: str, workflow_id: str, key: str) -> None:
        """Wake this process's waiters on a write that just committed, without waiting for
        the database's notification (which still comes, for other processes, and then finds
        the waiter gone or wakes it once more: a waiter always re-reads before returning)."""
        self.waiters.notify(kind, f"{workflow_id}{SEPARATOR}{key}")

    # -- messages ---------------------------------------------------------------------------
    async def send(
        self, destination_id: str, message: Any, topic: str | None, idempotency_key: str | None
    ) -> None:
        """Deliver ``message`` to a workflow's mailbox; durable, deduplicated by key."""
        topic_name = _topic(topic)
        check_key(destination_id, "destination workflow id")
        if idempotency_key is not None:
            check_key(idempotency_key, "idempotency key")
        payload = encode(message, what="message")
        run = _durable_run()
        if run is None:
            if await self.store.send_message(destination_id, topic_name, payload, idempotency_key):
                self._wake(NOTIFY_MESSAGE, destination_id, topic_name)
            return
        number = await run.begin()
        if run.replayed(number, "send") is not None:
            return
        run.check_runnable()
        step = StepRecord(
            run.workflow_id,
            number,
            "send",
            StepKind.SEND,
            output=json.dumps(destination_id),
            started_at=self.clock.now_ms(),
            epoch=run.epoch,
        )
        key = idempotency_key or f"{run.workflow_id}:{number}"
        with run.tracing.durable(
            run,
            StepKind.SEND,
            "send",
            number,
            extra={_DESTINATION: destination_id, _TOPIC: topic_name},
        ):
            try:
                sent = await self.store.send_message(destination_id, topic_name, payload, key, step)
            except WorkflowStateError as error:
                await run.refused(error, step)  # our own earlier send, or the run stops
                return
            if sent:
                self._wake(NOTIFY_MESSAGE, destination_id, topic_name)

    async def recv(self, topic: str | None, timeout: float | None) -> Any:
        """Consume the oldest message on ``topic`` (waiting up to ``timeout`` s), exactly once,
        atomically with its checkpoint; None on timeout. Only inside a workflow."""
        run = context.current_run("app.recv()")
        topic_name = _topic(topic)
        _check_timeout(timeout)
        number = await run.begin()
        recorded = run.recorded.get(number)
        deadline_ms: int | None = None
        if recorded is not None and recorded.name == _RECV_DEADLINE:
            deadline_ms = json.loads(run.replayed(number, _RECV_DEADLINE).output or "null")  # type: ignore[union-attr]
            number = await run.begin()
        done = run.replayed(number, "recv")
        if done is not None:
            return decode(done.output)
        run.check_runnable()
        with run.tracing.durable(
            run,
            StepKind.RECV,
            "recv",
            number,
            detail=topic_name or None,
            extra={_TOPIC: topic_name},
        ) as span:
            value = await self._receive(run, topic_name, timeout, number, deadline_ms)
            if span is not None:
                span.set_attribute(_TIMED_OUT, value is _TIMEOUT)
        return None if value is _TIMEOUT else value

    async def _receive(
        self,
        run: WorkflowRun,
        topic_name: str,
        timeout: float | None,
        number: int,
        deadline_ms: int | None,
    ) -> Any:
        """recv's loop: consume a message, or record the deadline, wait, and finally record
        the timeout (returns ``_TIMEOUT``)."""
        key = f"{run.workflow_id}{SEPARATOR}{topic_name}"
        with self.waiters.subscribe((NOTIFY_MESSAGE, key)) as subscription:
            while True:
                step = StepRecord(
                    run.workflow_id,
                    number,
                    "recv",
                    StepKind.RECV,
                    started_at=self.clock.now_ms(),
                    epoch=run.epoch,
                )
                try:
                    payload = await self.store.recv_message(run.workflow_id, topic_name, step)
                except WorkflowStateError as error:
                    payload = (await run.refused(error, step)).output  # consumed earlier
                    if payload is None:  # recorded as our own timeout
                        return _TIMEOUT
                if payload is not None:
                    return decode(payload)
                if deadline_ms is None:  # first miss: make the timeout durable, then wait
                    deadline_ms = self.clock.now_ms() + int(
                        (DEFAULT_TIMEOUT_SECONDS if timeout is None else timeout) * 1000
                    )
                    await run.checkpoint(
                        StepRecord(
                            run.workflow_id,
                            number,
                            _RECV_DEADLINE,
                            StepKind.SLEEP,
                            output=json.dumps(deadline_ms),
                            epoch=run.epoch,
                        )
                    )
                    number = await run.begin()
                    continue
                remaining = deadline_ms - self.clock.now_ms()
                if remaining <= 0:
                    await run.checkpoint(step)  # timed out: None is the recorded answer
                    return _TIMEOUT
                run.metrics.recv_waiters.inc()
                try:
                    await run.wait(subscription.next(self._wait_seconds(remaining)))
                finally:
                    run.metrics.recv_waiters.dec()

    # -- events -----------------------------------------------------------------------------
    async def set_event(self, key: str, value: Any) -> None:
        """Publish (or overwrite) an event of the running workflow."""
        run = context.current_run("app.set_event()")
        _check_key(key, "event key")
        number = await run.begin()
        if run.replayed(number, "set_event") is not None:
            return
        run.check_runnable()
        step = StepRecord(
            run.workflow_id,
            number,
            "set_event",
            StepKind.SET_EVENT,
            output=json.dumps(key),
            started_at=self.clock.now_ms(),
            epoch=run.epoch,
        )
        with run.tracing.durable(run, StepKind.SET_EVENT, "set_event", number, detail=key):
            try:
                await self.store.set_event(
                    run.workflow_id, key, encode(value, what="event value"), step
                )
            except WorkflowStateError as error:
                await run.refused(error, step)  # our own earlier write, or the run stops
        self._wake(NOTIFY_EVENT, run.workflow_id, key)

    async def get_event(self, workflow_id: str, key: str, timeout: float | None) -> Any:
        """Wait until the workflow publishes ``key`` (its value) or ``timeout`` passes (None).
        Inside a workflow the value read is recorded, so a replay sees the same value."""
        _check_timeout(timeout)
        check_key(workflow_id, "workflow id")
        _check_key(key, "event key")
        run = _durable_run()
        if run is None:
            return await self._wait_event(workflow_id, key, timeout)
        number = await run.begin()
        recorded = run.replayed(number, "get_event")
        if recorded is not None:
            return decode(recorded.output)
        run.check_runnable()
        value = await run.wait(self._wait_event(workflow_id, key, timeout))
        await run.checkpoint(
            StepRecord(
                run.workflow_id,
                number,
                "get_event",
                StepKind.GET_EVENT,
                output=encode(value, what="event value"),
                epoch=run.epoch,
            )
        )
        return value

    async def _wait_event(self, workflow_id: str, key: str, timeout: float | None) -> Any:
        deadline_ms = self.clock.now_ms() + int(
            (DEFAULT_TIMEOUT_SECONDS if timeout is None else timeout) * 1000
        )
        with self.waiters.subscribe(
            (NOTIFY_EVENT, f"{workflow_id}{SEPARATOR}{key}"), (NOTIFY_WORKFLOW, workflow_id)
        ) as subscription:
            while True:
                value = await self.store.get_event(workflow_id, key)
                if value is not None:
                    return decode(value)
                record = await self.store.get_workflow(workflow_id)
                if record is None:
                    raise WorkflowNotFoundError(
                        f"no workflow with id {workflow_id!r}", workflow_id=workflow_id
                    )
                if record.status.is_terminal:
                    return None  # finished without publishing it: it never will
                remaining = deadline_ms - self.clock.now_ms()
                if remaining <= 0:
                    return None
                await subscription.wait(self._wait_seconds(remaining))

    async def get_events(self, workflow_id: str) -> dict[str, Any]:
        """Every event the workflow has published, key -> current value."""
        events = await self.store.get_events(check_key(workflow_id, "workflow id"))
        if not events and await self.store.get_workflow(workflow_id) is None:
            raise WorkflowNotFoundError(
                f"no workflow with id {workflow_id!r}", workflow_id=workflow_id
            )
        return {key: decode(value) for key, value in events.items()}

    # -- streams ----------------------------------------------------------------------------
    async def write_stream(self, key: str, value: Any, *, close: bool = False) -> None:
        """Append ``value`` to the running workflow's stream ``key`` (or close it)."""
        run = context.current_run("app.write_stream()" if not close else "app.close_stream()")
        _check_key(key, "stream key")
        name = "close_stream" if close else "write_stream"
        number = await run.begin()
        if run.replayed(number, name) is not None:
            return
        run.check_runnable()
        encoded = None if close else encode(value, what="stream value")
        step = StepRecord(
            run.workflow_id,
            number,
            name,
            StepKind.STREAM,
            output=json.dumps(key),
            started_at=self.clock.now_ms(),
            epoch=run.epoch,
        )
        try:
            await self.store.write_stream(run.workflow_id, key, encoded, closed=close, step=step)
        except WorkflowStateError as error:
            await run.refused(error, step)  # our own earlier write, or the run stops
        self._wake(NOTIFY_STREAM, run.workflow_id, key)

    async def read_stream(self, workflow_id: str, key: str) -> AsyncIterator[Any]:
        """Yield the stream's values as they are written; stop when it is closed or the
        workflow has finished."""
        check_key(workflow_id, "workflow id")
        _check_key(key, "stream key")
        if await self.store.get_workflow(workflow_id) is None:
            raise WorkflowNotFoundError(
                f"no workflow with id {workflow_id!r}", workflow_id=workflow_id
            )
        position = 0
        with self.waiters.subscribe(
            (NOTIFY_STREAM, f"{workflow_id}{SEPARATOR}{key}"), (NOTIFY_WORKFLOW, workflow_id)
        ) as subscription:
            while True:
                entries = await self.store.read_stream(workflow_id, key, position)
                for entry in entries:
                    if entry.closed:
                        return
                    position = entry.position + 1
                    yield decode(entry.value)
                if entries:
                    continue
                record = await self.store.get_workflow(workflow_id)
                if record is None or record.status.is_terminal:
                    if not await self.store.read_stream(workflow_id, key, position):
                        return  # it ended without closing the stream: nothing more comes
                    continue
                await subscription.wait(self._wait_seconds(None))
