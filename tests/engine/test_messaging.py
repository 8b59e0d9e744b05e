"""send/recv, events and streams on both stores."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from orchestrator import (
    FakeClock,
    NotInWorkflowError,
    Orchestrator,
    SerializationError,
    StepKind,
    WorkflowFinishedError,
    WorkflowFunction,
    WorkflowNotFoundError,
    WorkflowStatus,
)
from orchestrator.store.base import NOTIFY_MESSAGE, SEPARATOR
from tests.conftest import AppFactory


async def test_messages_wait_for_recv_in_fifo_order_per_topic(make_app: AppFactory) -> None:
    app = make_app()

    @app.workflow(name="inbox")
    async def inbox() -> list[object]:
        first = await app.recv("a", timeout=10)
        second = await app.recv("a", timeout=10)
        other = await app.recv("b", timeout=10)
        return [first, second, other]

    async with app:
        handle = await app.start(inbox, workflow_id="in-1")
        await app.send("in-1", {"n": 2}, topic="b")
        await app.send("in-1", {"n": 1}, topic="a")
        await app.send("in-1", ["later"], topic="a")
        assert await handle.result(timeout=10) == [{"n": 1}, ["later"], {"n": 2}]
        kinds = [s.kind for s in await app.list_steps("in-1")]
        assert kinds.count(StepKind.RECV) == 3


async def test_recv_timeout_returns_none_and_replays_it(make_app: AppFactory) -> None:
    app = make_app()

    @app.workflow(name="impatient")
    async def impatient() -> object:
        return await app.recv("never", timeout=0.2)

    async with app:
        assert await (await app.start(impatient, workflow_id="t1")).result(timeout=10) is None
        steps = await app.list_steps("t1")
        assert [s.name for s in steps] == ["recv.deadline", "recv"]
        fork = await app.fork("t1", from_step=3)  # replays the timeout: None, without waiting
        assert await fork.result(timeout=2) is None


async def test_recv_deadline_is_durable_across_a_crash(make_app: AppFactory) -> None:
    clock = FakeClock()

    def define(app: Orchestrator) -> WorkflowFunction[[], object]:
        @app.workflow(name="waiting")
        async def waiting() -> object:
            return await app.recv(timeout=10)

        return waiting

    first = make_app(clock=clock, executor_id="recv-crash")
    waiting = define(first)
    async with first:
        await first.start(waiting, workflow_id="w1")
        await asyncio.sleep(0.2)
        await clock.advance(6)
        await first.shutdown(timeout=0)

    second = make_app(clock=clock, executor_id="recv-crash")
    define(second)
    async with second:
        handle = second.retrieve("w1")
        await asyncio.sleep(0.2)
        await clock.advance(3)
        await asyncio.sleep(0.1)
        assert (await handle.status()).status is WorkflowStatus.PENDING
        await clock.advance(1.1)  # 6 + 3 + 1.1 > 10: times out now, not 10 s after recovery
        assert await handle.result(timeout=5) is None


async def test_duplicate_sends_with_one_idempotency_key_deliver_once(make_app: AppFactory) -> None:
    app = make_app()

    @app.workflow(name="collector")
    async def collector() -> list[object]:
        return [await app.recv(timeout=10), await app.recv(timeout=0.3)]

    async with app:
        handle = await app.start(collector, workflow_id="dup")
        await asyncio.gather(*(app.send("dup", "paid", idempotency_key="evt_1") for _ in range(20)))
        assert await handle.result(timeout=10) == ["paid", None]


async def test_send_inside_a_workflow_is_a_step_sent_once(make_app: AppFactory) -> None:
    app = make_app()

    @app.workflow(name="receiver")
    async def receiver() -> list[object]:
        return [await app.recv(timeout=10), await app.recv(timeout=0.3)]

    @app.workflow(name="sender")
    async def sender(target: str) -> None:
        await app.send(target, {"from": "sender"})

    async with app:
        target = await app.start(receiver, workflow_id="rcv")
        await (await app.start(sender, "rcv", workflow_id="snd")).result()
        await (await app.fork("snd", from_step=2)).result()  # replays the send: not re-sent
        assert await target.result(timeout=10) == [{"from": "sender"}, None]
        [step] = await app.list_steps("snd")
        assert step.kind is StepKind.SEND


async def test_bad_sends_and_recv_outside_a_workflow(make_app: AppFactory) -> None:
    app = make_app()

    @app.workflow(name="quick")
    async def quick() -> None:
        return None

    async with app:
        with pytest.raises(WorkflowNotFoundError):
            await app.send("nobody", "hi")
        await (await app.start(quick, workflow_id="done")).result()
        with pytest.raises(WorkflowFinishedError):
            await app.send("done", "hi")
        with pytest.raises(SerializationError):
            await app.send("done", object())
        with pytest.raises(NotInWorkflowError):
            await app.recv()
        with pytest.raises(NotInWorkflowError):
            await app.set_event("k", 1)


async def test_events_are_set_overwritten_and_awaited(make_app: AppFactory) -> None:
    app = make_app()
    gate = asyncio.Event()

    @app.step()
    async def wait_gate() -> None:
        await gate.wait()

    @app.workflow(name="publisher")
    async def publisher() -> None:
        await app.set_event("payment_url", "https://pay/1")
        await wait_gate()
        await app.set_event("payment_url", "https://pay/2")
        await app.set_event("status", {"state": "paid"})

    @app.workflow(name="reader")
    async def reader(target: str) -> object:
        return await app.get_event(target, "status", timeout=10)

    async with app:
        handle = await app.start(publisher, workflow_id="pub")
        assert await app.get_event("pub", "payment_url", timeout=5) == "https://pay/1"
        assert await app.get_event("pub", "status", timeout=0.2) is None  # timeout
        waiting = await app.start(reader, "pub", workflow_id="reader")
        gate.set()
        await handle.result(timeout=5)
        assert await app.get_event("pub", "payment_url", timeout=1) == "https://pay/2"
        assert await app.get_events("pub") == {
            "payment_url": "https://pay/2",
            "status": {"state": "paid"},
        }
        assert await waiting.result(timeout=5) == {"state": "paid"}
        # the value read inside a workflow is recorded: a replay sees it without waiting
        assert (await app.list_steps("reader"))[0].output == {"state": "paid"}
        assert await app.get_event("pub", "never-set", timeout=5) is None  # finished: at once
        with pytest.raises(WorkflowNotFoundError):
            await app.get_event("nobody", "x", timeout=1)


async def test_streams_are_read_while_written(make_app: AppFactory) -> None:
    app = make_app()
    proceed = asyncio.Event()

    @app.step()
    async def wait_proceed() -> None:
        await proceed.wait()

    @app.workflow(name="progress")
    async def progress(close: bool) -> None:
        await app.write_stream("p", 1)
        await wait_proceed()
        await app.write_stream("p", {"pct": 50})
        if close:
            await app.close_stream("p")
            await app.sleep(0.2)

    async with app:
        await app.start(progress, True, workflow_id="s1")
        seen: list[object] = []

        async def read() -> None:
            async for value in app.read_stream("s1", "p"):
                seen.append(value)
                if len(seen) == 1:
                    proceed.set()

        await asyncio.wait_for(read(), 10)
        assert seen == [1, {"pct": 50}]

        await app.start(progress, False, workflow_id="s2")
        values = [v async for v in app.read_stream("s2", "p")]
        assert values == [1, {"pct": 50}]  # ends with the workflow, though never closed


async def test_a_redelivered_send_answers_as_the_first_even_after_the_end(
    make_app: AppFactory,
) -> None:
    app = make_app()

    @app.workflow(name="once")
    async def once() -> object:
        return await app.recv(timeout=10)

    async with app:
        handle = await app.start(once, workflow_id="pay-1")
        await app.send("pay-1", {"paid": True}, idempotency_key="evt_9")
        assert await handle.result(timeout=10) == {"paid": True}
        await app.send("pay-1", {"paid": True}, idempotency_key="evt_9")  # the retry: no error
        with pytest.raises(WorkflowFinishedError):
            await app.send("pay-1", {"paid": True}, idempotency_key="evt_10")


@pytest.mark.postgres
async def test_a_send_wakes_a_waiter_in_the_same_process_without_the_database(
    postgres_url: str,
) -> None:
    """With the database's notifications cut off (and no polling on PostgreSQL), only the
    send's and set_event's own wake-up of this process's waiters can deliver."""
    app = Orchestrator("wake", postgres_url)

    @app.workflow(name="waiter")
    async def waiter() -> object:
        await app.set_event("ready", True)
        return await app.recv("go", timeout=600)

    async with app:
        app.store.driver._handlers.clear()  # type: ignore[attr-defined]
        handle = await app.start(waiter, workflow_id="wake-1")
        assert await app.get_event("wake-1", "ready", timeout=30) is True
        await asyncio.sleep(0.2)  # parked in recv, its deadline recorded
        await app.send("wake-1", "now", topic="go")
        assert await handle.result(timeout=30) == "now"


@pytest.mark.postgres
async def test_a_message_sent_between_the_first_read_and_the_wait_is_received(
    postgres_url: str,
) -> None:
    """recv reads the mailbox once (recording its deadline when nothing waits) and then
    waits: a message another process commits after that read is known from the notification
    its subscription, taken before the read, remembered; recv does not wait out its timeout."""
    app = Orchestrator("gap", postgres_url)
    other = Orchestrator("gap", postgres_url)  # another process: only NOTIFY reaches `app`

    @app.workflow(name="gap_waiter")
    async def gap_waiter() -> object:
        return await app.recv("go", timeout=600)

    async with app, other:
        recv_message = app.store.recv_message
        sent: list[str] = []

        async def send_after(workflow_id: str, *args: Any, **kwargs: Any) -> Any:
            answer = await recv_message(workflow_id, *args, **kwargs)
            if answer is None and not sent:  # read nothing, not waiting yet
                sent.append(workflow_id)
                waiters = app.engine.waiters  # type: ignore[attr-defined]
                with waiters.subscribe((NOTIFY_MESSAGE, f"{workflow_id}{SEPARATOR}go")) as seen:
                    await other.send(workflow_id, "in the gap", topic="go")
                    await seen.next()  # `app` has its notification, recv's subscription too
            return answer

        app.store.recv_message = send_after  # type: ignore[method-assign]
        handle = await app.start(gap_waiter, workflow_id="gap-1")
        assert await handle.result(timeout=30) == "in the gap"
        assert sent == ["gap-1"]


async def _until_waiting(app: Orchestrator, count: int) -> None:
    """Until ``count`` recvs wait in this process (the metric is raised as one parks)."""
    while app.metrics.registry.get_sample_value("orchestrator_recv_waiters") != count:
        await asyncio.sleep(0.01)


async def test_a_send_to_a_recv_parked_in_the_same_process_is_handed_to_it(
    make_app: AppFactory,
) -> None:
    """The send hands the message to the waiting recv, whose checkpoint the next recv's call
    writes (the message stored consumed with it): the recv returns the payload without
    reading the mailbox again; what is recorded is what a read would have recorded, and the
    message is consumed once."""
    app = make_app()

    @app.workflow(name="parked_inbox")
    async def parked_inbox() -> list[object]:
        return [await app.recv("go", timeout=600), await app.recv("go", timeout=0)]

    async with app:
        recv_message = app.store.recv_message
        reads: list[int] = []

        async def counted(workflow_id: str, topic: str, step: Any, *args: Any) -> Any:
            reads.append(step.step_number)
            return await recv_message(workflow_id, topic, step, *args)

        app.store.recv_message = counted  # type: ignore[method-assign]
        handle = await app.start(parked_inbox, workflow_id="parked-1")
        await _until_waiting(app, 1)
        await app.send("parked-1", {"paid": True}, topic="go")
        assert await handle.result(timeout=30) == [{"paid": True}, None]
        assert reads == [1, 3]  # the first recv's read as it parked, the second recv's
        steps = await app.list_steps("parked-1")
        assert [(s.step_number, s.name) for s in steps] == [
            (1, "recv.deadline"),
            (2, "recv"),
            (3, "recv.deadline"),
            (4, "recv"),
        ]
        assert (steps[1].output, steps[3].output) == ({"paid": True}, None)


@pytest.mark.postgres
async def test_a_delivery_in_the_same_process_never_passes_an_older_message(
    postgres_url: str,
) -> None:
    """Another process's message, committed before this process's send, comes first, whether
    or not its notification has reached the waiting recv when the send goes."""
    app = Orchestrator("order", postgres_url)
    other = Orchestrator("order", postgres_url)

    @app.workflow(name="ordered")
    async def ordered() -> list[object]:
        return [await app.recv("go", timeout=600), await app.recv("go", timeout=600)]

    async with app, other:
        for round_number in range(5):
            handle = await app.start(ordered, workflow_id=f"order-{round_number}")
            await _until_waiting(app, 1)
            await other.send(f"order-{round_number}", "first", topic="go")
            await app.send(f"order-{round_number}", "second", topic="go")
            assert await handle.result(timeout=30) == ["first", "second"]


async def test_a_message_handed_to_a_parked_recv_is_recorded_with_the_final_status(
    make_app: AppFactory,
) -> None:
    """A send to a recv parked in this process hands it the payload; the recv's checkpoint
    waits for the run's next write, here the final status: one statement records both
    (Store.finish_after_step with its recv_topic), nothing else is written for the message,
    and the send returns once that has committed."""
    app = make_app()
    gate = asyncio.Event()

    @app.workflow(name="handed_last")
    async def handed_last() -> object:
        message = await app.recv("go", timeout=600)
        await gate.wait()  # (not a durable call: the checkpoint still waits)
        return message

    async with app:
        deliveries: list[object] = []
        finishes: list[object] = []
        deliver, finish_after_step = app.store.deliver_message, app.store.finish_after_step

        async def counted_deliver(*args: Any) -> Any:
            deliveries.append(args)
            return await deliver(*args)

        async def counted_finish(step: Any, output: Any, **kwargs: Any) -> Any:
            finishes.append((step.name, kwargs.get("recv_topic")))
            return await finish_after_step(step, output, **kwargs)

        app.store.deliver_message = counted_deliver  # type: ignore[method-assign]
        app.store.finish_after_step = counted_finish  # type: ignore[method-assign]
        handle = await app.start(handed_last, workflow_id="handed-1")
        await _until_waiting(app, 1)
        send = asyncio.create_task(app.send("handed-1", {"paid": True}, topic="go"))
        await asyncio.sleep(0.2)
        assert not send.done()  # the recv has it, its checkpoint is not written yet
        assert [s.name for s in await app.list_steps("handed-1")] == ["recv.deadline"]
        gate.set()
        await asyncio.wait_for(send, 30)
        assert await handle.result(timeout=30) == {"paid": True}
        assert deliveries == [] and finishes == [("recv", "go")]
        steps = await app.list_steps("handed-1")
        assert [(s.step_number, s.name, s.output) for s in steps] == [
            (1, "recv.deadline", steps[0].output),
            (2, "recv", {"paid": True}),
        ]


@pytest.mark.parametrize("then", ["finish", "recv"])
async def test_a_handed_message_that_would_pass_an_older_one_replays_the_run(
    make_app: AppFactory, then: str
) -> None:
    """A message handed to a parked recv, while another send stores one for the same topic
    before the recv's checkpoint is written: the write is refused (never a newer message
    before an older one), the run replays from its records and receives the stored one
    first, and the handed message is stored for a later recv; each is received once. Both
    ways the checkpoint is written: with the final status, or by the next durable call."""
    app = make_app()
    gate = asyncio.Event()
    runs: list[object] = []

    @app.workflow(name="overtaken")
    async def overtaken() -> list[object]:
        first = await app.recv("go", timeout=600)
        runs.append(first)
        await gate.wait()
        if then == "finish":
            return [first]
        return [first, await app.recv("go", timeout=5)]

    async with app:
        sent: list[str] = []
        send_message = app.store.send_message

        async def counted_send(destination_id: str, topic: str, payload: str, *args: Any) -> Any:
            sent.append(payload)
            return await send_message(destination_id, topic, payload, *args)

        app.store.send_message = counted_send  # type: ignore[method-assign]
        handle = await app.start(overtaken, workflow_id=f"overtaken-{then}")
        await _until_waiting(app, 1)
        handed = asyncio.create_task(app.send(handle.workflow_id, "handed", topic="go"))
        while not runs:  # the recv returned the handed message; its checkpoint waits
            await asyncio.sleep(0.01)
        await app.send(handle.workflow_id, "stored", topic="go", idempotency_key="k-1")
        gate.set()
        await asyncio.wait_for(handed, 30)
        expected = ["stored"] if then == "finish" else ["stored", "handed"]
        assert await handle.result(timeout=30) == expected
        assert runs == ["handed", "stored"]  # the first run went back to its records
        steps = [s for s in await app.list_steps(handle.workflow_id) if s.name == "recv"]
        assert [s.output for s in steps] == expected
        if then == "finish":  # refused with the final status: the send stored it itself
            assert sent == ['"stored"', '"handed"']


async def test_a_handed_message_whose_workflow_is_cancelled_first_is_refused_to_its_send(
    make_app: AppFactory,
) -> None:
    """The workflow is cancelled after its recv took a handed message and before the
    checkpoint was written: nothing is recorded, and the send gets the error a send to a
    finished workflow gets (never a silent loss)."""
    app = make_app()
    gate = asyncio.Event()

    @app.workflow(name="cancelled_after_recv")
    async def cancelled_after_recv() -> object:
        message = await app.recv("go", timeout=600)
        await gate.wait()
        return message

    async with app:
        handle = await app.start(cancelled_after_recv, workflow_id="cancelled-1")
        await _until_waiting(app, 1)
        send = asyncio.create_task(app.send("cancelled-1", "late", topic="go"))
        await asyncio.sleep(0.2)
        await app.cancel("cancelled-1")
        gate.set()
        with pytest.raises(WorkflowFinishedError):
            await asyncio.wait_for(send, 30)
        assert (await handle.status()).status is WorkflowStatus.CANCELLED
        assert [s.name for s in await app.list_steps("cancelled-1")] == ["recv.deadline"]


async def test_a_message_handed_while_a_parallel_step_runs_is_recorded_at_once(
    make_app: AppFactory,
) -> None:
    """A recv parked beside a step still running (asyncio.gather) takes a handed message by
    writing its checkpoint at once, as the send used to (Store.deliver_message): a deferred
    one would be passed by that step's checkpoint. The send returns before the step ends."""
    app = make_app()
    release = asyncio.Event()

    @app.step()
    async def slow() -> str:
        await release.wait()
        return "slow"

    @app.workflow(name="beside_a_step")
    async def beside_a_step() -> list[object]:
        return list(await asyncio.gather(slow(), app.recv("go", timeout=600)))

    async with app:
        deliveries: list[object] = []
        deliver = app.store.deliver_message

        async def counted_deliver(*args: Any) -> Any:
            deliveries.append(args[2])
            return await deliver(*args)

        app.store.deliver_message = counted_deliver  # type: ignore[method-assign]
        handle = await app.start(beside_a_step, workflow_id="beside-1")
        await _until_waiting(app, 1)
        await asyncio.wait_for(app.send("beside-1", "now", topic="go"), 30)
        assert deliveries == ['"now"']
        assert "recv" in [s.name for s in await app.list_steps("beside-1")]
        release.set()
        assert await handle.result(timeout=30) == ["slow", "now"]


async def test_a_message_handed_while_a_parallel_wait_depends_on_its_send_is_recorded_at_once(
    make_app: AppFactory,
) -> None:
    """The recv waits beside a get_event (asyncio.gather) on a workflow whose step sends to it
    and only then publishes the event. The handed message is written at once: left to the
    recipient's next write, the send would wait for the run, and the run for the event."""
    app = make_app()

    @app.step()
    async def tell(destination: str) -> None:
        await app.send(destination, "told", topic="go")  # (in a step: handed over)

    @app.workflow(name="teller")
    async def teller(destination: str) -> None:
        await app.recv("start", timeout=600)
        await tell(destination)
        await app.set_event("told", True)

    @app.workflow(name="listener")
    async def listener() -> list[object]:
        return list(
            await asyncio.gather(
                app.recv("go", timeout=600), app.get_event("teller-1", "told", timeout=600)
            )
        )

    async with app:
        await app.start(teller, "listener-1", workflow_id="teller-1")
        await _until_waiting(app, 1)
        handle = await app.start(listener, workflow_id="listener-1")
        await _until_waiting(app, 2)
        await app.send("teller-1", "go ahead", topic="start")
        assert await handle.result(timeout=20) == ["told", True]
