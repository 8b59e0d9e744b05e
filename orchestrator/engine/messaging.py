"""send/recv, set_event/get_event and streams: durable messages between workflows and the world.

Waiting costs no thread and no connection: a waiter subscribes to the in-process fan-out of
store notifications (LISTEN/NOTIFY on PostgreSQL, commit hooks on SQLite), re-reads the table
when woken, and otherwise waits on the clock until its deadline. A lost notification (the
listening connection dropped) wakes every waiter on reconnect, so none waits out its deadline.
A store whose other processes cannot notify this one (SQLite) is re-read every
``store.poll_seconds`` as well.

``timeout=None`` means no timeout: recv waits until a message comes (or the workflow is
cancelled), get_event until the event is set or the workflow ends.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from opentelemetry import trace

from orchestrator.attributes import parse_message_key
from orchestrator.clock import Clock
from orchestrator.engine.notifications import Subscription, Waiters
from orchestrator.engine.run import (
    Attempt,
    Call,
    Delivery,
    WorkflowRun,
    durable_run,
    require_run,
)
from orchestrator.errors import (
    InvalidArgumentError,
    PayloadTooLargeError,
    StoreBusyError,
    WorkflowNotFoundError,
)
from orchestrator.serialization import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    check_key,
    decode,
    encode,
    renamed,
)
from orchestrator.store.base import (
    NOTIFY_EVENT,
    NOTIFY_MESSAGE,
    NOTIFY_STREAM,
    NOTIFY_WORKFLOW,
    SEPARATOR,
    KeyedDelivery,
    KeyedMessage,
    StepRecord,
    Store,
)
from orchestrator.types import StepKind

DEFAULT_TIMEOUT_SECONDS = 60.0  # the default of app.recv and app.get_event
DEFAULT_KEEP_SECONDS = 86400.0  # how long a message sent to a key nobody holds yet is kept
# How soon recv looks again at a message another transaction held (a fenced-off executor's
# recv of the same mailbox, one statement long); real time, like a connection retry.
BUSY_RETRY_SECONDS = 0.02
RECV_DEADLINE = "recv.deadline"  # recorded on recv's first wait: a recovered recv waits less
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


def _deadline(clock: Clock, timeout: float | None) -> int | None:
    return None if timeout is None else clock.now_ms() + int(timeout * 1000)


class Messaging:
    """The messaging half of the engine; given the store, clock and waiters it uses."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        waiters: Waiters,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        keep_seconds: float = DEFAULT_KEEP_SECONDS,
    ) -> None:
        self.store = store
        self.clock = clock
        self.waiters = waiters
        self.max_payload_bytes = max_payload_bytes  # the largest message, event, stream item
        self.keep_seconds = keep_seconds  # send_to_key's default keep time
        # The recvs waiting in this process, by mailbox: a send from this process hands its
        # message to one directly (no read by the recv; its checkpoint rides on the run's
        # next write, see _deliver).
        # (keyed by the subscription's key: no string or tuple more per parked workflow)
        self._parked: dict[str, _Parked] = {}

    async def _next(self, subscription: Subscription, deadline_ms: int | None) -> bool:
        """The next notification, or the deadline (on the clock), or a re-read."""
        return await subscription.wait(
            deadline_ms, clock=self.clock, poll_seconds=self.store.poll_seconds
        )

    def _wake(self, kind: str, workflow_id: str, key: str) -> None:
        """Wake this process's waiters on a write that just committed, without waiting for
        the database's notification (which still comes, for other processes, and then finds
        the waiter gone or wakes it once more: a waiter always re-reads before returning)."""
        self.waiters.notify(kind, f"{workflow_id}{SEPARATOR}{key}")

    # -- messages ---------------------------------------------------------------------------
    async def send(
        self,
        destination_id: str,
        message: Any,
        topic: str | None,
        idempotency_key: str | None,
        connection: object | None = None,
    ) -> None:
        """Deliver ``message`` to a workflow's mailbox; durable, deduplicated by key. With
        ``connection``, in the caller's transaction: delivered when (if) it commits."""
        topic_name = _topic(topic)
        check_key(destination_id, "destination workflow id")
        if idempotency_key is not None:
            check_key(idempotency_key, "idempotency key")
        try:
            payload = encode(message, what="message", limit=self.max_payload_bytes)
        except PayloadTooLargeError as exc:  # (named here: no string made per send)
            raise renamed(
                exc, f"the message to workflow {destination_id!r} on topic {topic_name!r}"
            ) from None
        run = durable_run()
        if connection is not None:
            if run is not None:
                raise InvalidArgumentError(
                    "a workflow cannot send in a transaction of its own: a workflow's body"
                    " writes only through durable calls (use app.send, or send in a step)"
                )
            # No wake here: the commit's notification wakes the waiters, this process's too.
            await self.store.send_message_in(
                connection, destination_id, topic_name, payload, idempotency_key
            )
            return
        if run is None:
            parked = self._parked.get(f"{destination_id}{SEPARATOR}{topic_name}")
            if (
                parked is not None
                and parked.waiting
                and parked.delivery is None
                and idempotency_key is None
            ):
                await self._deliver(parked, destination_id, topic_name, payload)
                return
            if await self.store.send_message(destination_id, topic_name, payload, idempotency_key):
                self._wake(NOTIFY_MESSAGE, destination_id, topic_name)
            return

        async def perform(attempt: Attempt) -> None:
            step = run.step_record(
                attempt.number,
                "send",
                StepKind.SEND,
                output=json.dumps(destination_id),
                started_at=attempt.started_at,
            )
            key = idempotency_key or f"{run.workflow_id}:{attempt.number}"
            sent = await run.write(
                self.store.send_message(destination_id, topic_name, payload, key, step), step
            )
            if sent is True:
                self._wake(NOTIFY_MESSAGE, destination_id, topic_name)

        await run.call(
            Call(
                "send",
                StepKind.SEND,
                perform=perform,
                replay=lambda _: None,
                traced=True,
                attributes={_DESTINATION: destination_id, _TOPIC: topic_name},
            )
        )

    async def _deliver(
        self, parked: _Parked, destination_id: str, topic_name: str, payload: str
    ) -> None:
        """Send to a recv parked in this process: the payload is handed to the recv, which
        returns it without a read and leaves its checkpoint (the message its output) to the
        run's next write (engine.run.Delivery): the next durable call's, or the final status,
        in the same statement. This send returns once that write has committed, so a wake
        costs one statement; if it was refused or never made (an older message waited, the
        run stopped first) the message is stored the plain way. A send with an idempotency
        key of the caller's goes the plain way: its key must decide whether anything is
        stored, which the recipient's write cannot see of a concurrent send with that key."""
        delivery = Delivery(topic_name, payload)
        parked.delivery = delivery  # claimed: no other send delivers to it meanwhile
        self._wake(NOTIFY_MESSAGE, destination_id, topic_name)
        if await delivery.acked:  # durable: consumed with the recv's step, or stored
            return
        if await self.store.send_message(destination_id, topic_name, payload, None):
            self._wake(NOTIFY_MESSAGE, destination_id, topic_name)

    async def send_to_key(
        self,
        key: str,
        message: Any,
        topic: str | None,
        idempotency_key: str | None,
        keep_seconds: float | None,
    ) -> KeyedDelivery:
        """Deliver ``message`` to the newest unfinished workflow holding the business key
        ``name:value`` (its attribute), or keep it ``keep_seconds`` (default: the engine's) for
        the first workflow to start with (or set) that attribute. Inside a workflow, a durable
        call like send."""
        name, value = parse_message_key(key)
        topic_name = _topic(topic)
        if idempotency_key is not None:
            check_key(idempotency_key, "idempotency key")
        keep = self.keep_seconds if keep_seconds is None else keep_seconds
        if not keep > 0:  # (NaN too)
            raise InvalidArgumentError(f"keep_seconds must be > 0 seconds, got {keep!r}")
        keep_ms = max(1, int(keep * 1000))
        try:
            payload = encode(message, what="message", limit=self.max_payload_bytes)
        except PayloadTooLargeError as exc:
            raise renamed(exc, f"the message to key {key!r} on topic {topic_name!r}") from None
        run = durable_run()
        if run is None:
            delivery = await self.store.send_to_key(
                KeyedMessage(name, value, topic_name, payload, idempotency_key, keep_ms)
            )
            if delivery.workflow_id is not None and delivery.stored:
                self._wake(NOTIFY_MESSAGE, delivery.workflow_id, topic_name)
            return delivery

        async def perform(attempt: Attempt) -> KeyedDelivery:
            step = run.step_record(
                attempt.number,
                "send_to_key",
                StepKind.SEND,
                started_at=attempt.started_at,
            )  # its output: the delivery, written by the store with the step
            idempotency = idempotency_key or f"{run.workflow_id}:{attempt.number}"
            delivery = await run.write(
                self.store.send_to_key(
                    KeyedMessage(name, value, topic_name, payload, idempotency, keep_ms), step
                ),
                step,
            )
            if isinstance(delivery, StepRecord):  # recorded by our own earlier write
                return KeyedDelivery.from_json(delivery.output)
            if delivery.workflow_id is not None and delivery.stored:
                self._wake(NOTIFY_MESSAGE, delivery.workflow_id, topic_name)
            return delivery

        return await run.call(
            Call(
                "send_to_key",
                StepKind.SEND,
                perform=perform,
                replay=lambda step: KeyedDelivery.from_json(step.output),
                traced=True,
                attributes={_TOPIC: topic_name},
            )
        )

    def recv(self, topic: str | None, timeout: float | None) -> Awaitable[Any]:
        """Consume the oldest message on ``topic`` (waiting up to ``timeout`` s; None: no
        limit), exactly once, atomically with its checkpoint; None on timeout. Only inside a
        workflow. (Returns the durable call for the caller to await: no coroutine in between
        for a workflow parked here.)"""
        run = require_run("app.recv()")
        topic_name = _topic(topic)
        _check_timeout(timeout)
        deadline: list[int | None] = []  # recorded by an earlier execution's first wait
        call = _RecvCall(self, run, topic_name, timeout, deadline)
        if run.recorded_name(run.counter + 1) == RECV_DEADLINE:
            return self._recv_after_deadline(run, call, deadline)
        return run.call(call)

    async def _recv_after_deadline(
        self, run: WorkflowRun, call: _RecvCall, deadline: list[int | None]
    ) -> Any:
        """A recovered recv whose first wait recorded its deadline: replay that record (the
        wait goes on to the same deadline), then the recv itself."""

        def recorded_deadline(step: StepRecord) -> None:
            deadline.append(json.loads(step.output or "null"))

        await run.call(
            Call(RECV_DEADLINE, StepKind.SLEEP, perform=_never, replay=recorded_deadline)
        )
        return await run.call(call)

    async def receive(
        self,
        run: WorkflowRun,
        topic_name: str,
        timeout: float | None,
        number: int,
        deadline: list[int | None],
    ) -> Any:
        """recv's loop: consume a message, or record the deadline, wait (where a send from
        this process may deliver to it), and finally record the timeout (returns
        ``_TIMEOUT``)."""
        key = f"{run.workflow_id}{SEPARATOR}{topic_name}"
        parked: _Parked | None = None  # once it waits
        with self.waiters.subscribe((NOTIFY_MESSAGE, key)) as subscription:
            try:
                while True:
                    if parked is not None and parked.delivery is not None:  # a send handed one
                        delivery, parked.delivery = parked.delivery, None
                        if await self._take(run, parked, delivery):
                            return decode(delivery.payload)
                        # not delivered (stored, or its write failed): read what is there
                    now = self.clock.now_ms()
                    if parked is not None:  # (the record a handed message's write took, if any)
                        step = parked.step()
                    else:
                        step = run.step_record(number, "recv", StepKind.RECV, started_at=now)
                    parking = None  # the first read records the deadline if nothing waits
                    if not deadline and timeout is not None:
                        parking = run.step_record(
                            number,
                            RECV_DEADLINE,
                            StepKind.SLEEP,
                            output=json.dumps(now + int(timeout * 1000)),
                            started_at=now,
                        )
                    try:
                        answer = await run.write(
                            self.store.recv_message(run.workflow_id, topic_name, step, parking),
                            step,
                            parking,
                        )
                    except StoreBusyError:  # another executor's recv holds the message: no
                        await run.wait(  # notification will come when it lets go; look again
                            subscription.next(poll_seconds=BUSY_RETRY_SECONDS)
                        )
                        continue
                    if isinstance(answer, StepRecord):  # our own earlier write
                        if answer.name != RECV_DEADLINE:  # consumed
                            return _TIMEOUT if answer.output is None else decode(answer.output)
                        answer = None  # the deadline, recorded
                    if answer is not None:
                        return decode(answer)
                    if not deadline:  # first miss: the timeout is durable now; wait
                        if parking is None:  # (no limit: nothing to remember)
                            deadline.append(None)
                        else:
                            deadline.append(json.loads(parking.output or "null"))
                            parking = None  # (not held by a parked workflow's frame)
                            number = await run.begin()  # the deadline took recv's number
                        # No second read: the subscription, taken before the first, remembers
                        # a message notified since (the next wait returns at once).
                    due = deadline[0]
                    if due is not None and due <= self.clock.now_ms():
                        # timed out: None is the recorded answer
                        await run.record_step(
                            run.step_record(
                                number, "recv", StepKind.RECV, started_at=step.started_at
                            )
                        )
                        return _TIMEOUT
                    if parked is None:
                        parked = _Parked(run, number, now)
                        self._parked.setdefault(key, parked)  # (a second recv: reads only)
                    del step, answer  # (not held by a parked workflow's frame)
                    run.metrics.recv_waiters.inc()
                    parked.waiting = True  # only now may a send deliver: never during a read
                    try:
                        await run.wait(
                            subscription.next(
                                due, clock=self.clock, poll_seconds=self.store.poll_seconds
                            )
                        )
                    finally:
                        parked.waiting = False
                        run.metrics.recv_waiters.dec()
            finally:
                if parked is not None:
                    if parked.delivery is not None:  # handed over as the recv stopped: the
                        parked.delivery.settle(False)  # send stores it for the next run
                        parked.delivery = None
                    if self._parked.get(key) is parked:
                        del self._parked[key]

    async def _take(self, run: WorkflowRun, parked: _Parked, delivery: Delivery) -> bool:
        """A message a send handed to this parked recv: leave its checkpoint to the run's next
        write (True), or, when the run cannot defer one, write it now as the send once did
        (Store.deliver_message): True if delivered, False if the message was stored instead
        (the recv reads) or the write failed (the send gets that error; the recv reads what
        is there). It cannot while another call of the run is in flight (a parallel branch):
        a step's checkpoint would pass this one, and a wait (a child's result, an event)
        may depend on the send returning, which would wait for the run's next write: a
        deadlock. Nor while the run is stopping."""
        step = parked.step(delivery.payload)
        if not run.busy and run.defer(step, delivery):  # (this recv's own wait is over)
            return True
        try:
            delivered = await self.store.deliver_message(
                run.workflow_id, delivery.topic, delivery.payload, step
            )
        except Exception as exc:
            delivery.fail(exc)
            return False
        except BaseException as exc:
            delivery.fail(exc)
            raise
        delivery.settle(True)
        return delivered

    # -- events -----------------------------------------------------------------------------
    async def set_event(self, key: str, value: Any) -> None:
        """Publish (or overwrite) an event of the running workflow."""
        run = require_run("app.set_event()")
        check_key(key, "event key")
        try:
            encoded = encode(value, what="event value", limit=self.max_payload_bytes)
        except PayloadTooLargeError as exc:
            raise renamed(exc, f"the value of event {key!r}") from None

        async def perform(attempt: Attempt) -> None:
            step = run.step_record(
                attempt.number,
                "set_event",
                StepKind.SET_EVENT,
                output=json.dumps(key),
                started_at=attempt.started_at,
            )
            await run.write(self.store.set_event(run.workflow_id, key, encoded, step), step)
            self._wake(NOTIFY_EVENT, run.workflow_id, key)

        await run.call(
            Call(
                "set_event",
                StepKind.SET_EVENT,
                perform=perform,
                replay=lambda _: None,
                traced=True,
                detail=key,
            )
        )

    async def get_event(self, workflow_id: str, key: str, timeout: float | None) -> Any:
        """Wait until the workflow publishes ``key`` (its value) or ``timeout`` passes (None).
        Inside a workflow the value read is recorded, so a replay sees the same value."""
        _check_timeout(timeout)
        check_key(workflow_id, "workflow id")
        check_key(key, "event key")
        run = durable_run()
        if run is None:
            return await self._wait_event(workflow_id, key, timeout)

        async def perform(attempt: Attempt) -> Any:
            value = await run.wait(self._wait_event(workflow_id, key, timeout))
            await run.record_step(
                run.step_record(
                    attempt.number,
                    "get_event",
                    StepKind.GET_EVENT,
                    output=encode(value, what="event value"),
                )
            )
            return value

        return await run.call(
            Call(
                "get_event",
                StepKind.GET_EVENT,
                perform=perform,
                replay=lambda step: decode(step.output),
            )
        )

    async def _wait_event(self, workflow_id: str, key: str, timeout: float | None) -> Any:
        deadline_ms = _deadline(self.clock, timeout)
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
                    # It may have published and finished between the two reads: read again.
                    value = await self.store.get_event(workflow_id, key)
                    return None if value is None else decode(value)
                if deadline_ms is not None and deadline_ms <= self.clock.now_ms():
                    return None
                await self._next(subscription, deadline_ms)

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
        run = require_run("app.write_stream()" if not close else "app.close_stream()")
        check_key(key, "stream key")
        name = "close_stream" if close else "write_stream"
        try:
            encoded = (
                None if close else encode(value, what="stream value", limit=self.max_payload_bytes)
            )
        except PayloadTooLargeError as exc:
            raise renamed(exc, f"an item of stream {key!r}") from None

        async def perform(attempt: Attempt) -> None:
            step = run.step_record(
                attempt.number,
                name,
                StepKind.STREAM,
                output=json.dumps(key),
                started_at=attempt.started_at,
            )
            await run.write(
                self.store.write_stream(run.workflow_id, key, encoded, closed=close, step=step),
                step,
            )
            self._wake(NOTIFY_STREAM, run.workflow_id, key)

        await run.call(Call(name, StepKind.STREAM, perform=perform, replay=lambda _: None))

    async def read_stream(self, workflow_id: str, key: str) -> AsyncIterator[Any]:
        """Yield the stream's values as they are written; stop when it is closed or the
        workflow has finished."""
        check_key(workflow_id, "workflow id")
        check_key(key, "stream key")
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
                await self._next(subscription, None)


class _Parked:
    """A recv waiting in this process at step ``number`` since ``since``: ``step()`` is the
    record it writes when it consumes a message (with a handed message as its output, the
    record the run's next write takes); ``delivery``, the message a send handed to it, until
    the recv takes it."""

    __slots__ = ("delivery", "number", "run", "since", "waiting")

    def __init__(self, run: WorkflowRun, number: int, since: int) -> None:
        self.run = run
        self.number = number
        self.since = since
        self.waiting = False
        self.delivery: Delivery | None = None

    def step(self, payload: str | None = None) -> StepRecord:
        return self.run.step_record(
            self.number, "recv", StepKind.RECV, output=payload, started_at=self.since
        )


async def _never(attempt: Attempt) -> None:
    raise AssertionError("a recv deadline is only ever replayed here (recv records it)")


class _RecvCall(Call[Any]):
    """recv's durable call: one object for a workflow parked in recv (its loop is the
    ``perform`` method: no closure, no coroutine around it), None on timeout."""

    __slots__ = ("deadline", "messaging", "run", "timeout_seconds", "topic_name")

    traced = True
    guarded = False
    reruns = False
    settles = False
    finish = None
    retry = None
    timeout = None
    compensates = None
    name = "recv"
    kind = StepKind.RECV

    def __init__(
        self,
        messaging: Messaging,
        run: WorkflowRun,
        topic_name: str,
        timeout: float | None,
        deadline: list[int | None],
    ) -> None:
        self.messaging = messaging
        self.run = run
        self.topic_name = topic_name
        self.timeout_seconds = timeout
        self.deadline = deadline

    @property
    def detail(self) -> str | None:  # type: ignore[override]
        return self.topic_name or None

    @property
    def attributes(self) -> dict[str, Any]:  # type: ignore[override]
        return {_TOPIC: self.topic_name}

    async def perform(self, attempt: Attempt) -> Any:
        value = await self.messaging.receive(
            self.run, self.topic_name, self.timeout_seconds, attempt.number, self.deadline
        )
        span = trace.get_current_span()  # recv's own span, when traced
        if span.is_recording():
            span.set_attribute(_TIMED_OUT, value is _TIMEOUT)
        return None if value is _TIMEOUT else value

    def replay(self, recorded: StepRecord) -> Any:
        return decode(recorded.output)
