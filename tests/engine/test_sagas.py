"""Sagas on both stores: reverse-order compensation, arguments, pivots, ad hoc and parallel
compensations, child sagas, cancel/deadline rollback, and the operator actions."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

from orchestrator import (
    NonRetryableError,
    Orchestrator,
    Retry,
    StepKind,
    WorkflowFailedError,
    WorkflowFinishedError,
    WorkflowStateError,
    WorkflowStatus,
)
from tests.conftest import AppFactory

FAST = Retry(max_attempts=3, base_interval=0.01)


class Order(BaseModel):
    order_id: str
    quantity: int


class Reservation(BaseModel):
    reservation_id: str
    quantity: int


class PaymentDeclined(Exception):
    pass


def shop(app: Orchestrator, log: list[str]) -> dict[str, object]:
    """reserve -> charge -> ship, each with a compensation; ship fails on demand."""

    @app.step(name="reserve")
    async def reserve(order: Order) -> Reservation:
        log.append("reserve")
        return Reservation(reservation_id=f"r-{order.order_id}", quantity=order.quantity)

    @reserve.compensation
    async def release(order: Order, reservation: Reservation) -> None:
        assert isinstance(order, Order) and isinstance(reservation, Reservation)
        log.append(f"release {reservation.reservation_id} x{reservation.quantity}")

    @app.step(name="charge")
    async def charge(order: Order, amount: int) -> str:
        log.append("charge")
        return f"ch-{amount}"

    @charge.compensation
    async def refund(order: Order, amount: int, charge_id: str) -> None:
        log.append(f"refund {charge_id} {amount}")

    @app.step(name="ship")
    async def ship(order: Order) -> str:
        log.append("ship")
        if order.quantity > 5:
            raise NonRetryableError("cannot ship that many")
        return "shipped"

    @app.workflow(name="checkout")
    async def checkout(order: Order) -> str:
        await reserve(order)
        await charge(order, amount=order.quantity * 10)
        return await ship(order)

    return {"checkout": checkout, "reserve": reserve, "charge": charge}


async def test_failure_compensates_completed_steps_in_reverse_order(make_app: AppFactory) -> None:
    app = make_app()
    log: list[str] = []
    steps = shop(app, log)
    async with app:
        handle = await app.start(steps["checkout"], Order(order_id="o1", quantity=9))  # type: ignore[arg-type]
        with pytest.raises(WorkflowFailedError) as failure:
            await handle.result(timeout=10)
        assert failure.value.status == "COMPENSATED"
        assert failure.value.error_type.endswith("NonRetryableError")
        assert failure.value.error_message == "cannot ship that many"
        assert log == ["reserve", "charge", "ship", "refund ch-90 90", "release r-o1 x9"]
        info = await handle.status()
        assert info.status is WorkflowStatus.COMPENSATED and info.error == "cannot ship that many"
        history = await app.list_steps(handle.workflow_id)
        assert [(s.step_number, s.kind, s.status, s.compensates_step) for s in history] == [
            (1, StepKind.STEP, "SUCCESS", None),
            (2, StepKind.STEP, "SUCCESS", None),
            (3, StepKind.STEP, "ERROR", None),
            (4, StepKind.COMPENSATION, "SUCCESS", 2),
            (5, StepKind.COMPENSATION, "SUCCESS", 1),
        ]
        keys = {s.idempotency_key for s in history}
        assert len(keys) == 5  # each compensation has its own idempotency key
        with pytest.raises(WorkflowFailedError, match="COMPENSATED"):  # also read from the store
            await app.retrieve(handle.workflow_id).result()

        ok = await app.start(steps["checkout"], Order(order_id="o2", quantity=1))  # type: ignore[arg-type]
        assert await ok.result() == "shipped"


async def test_only_steps_before_the_pivot_compensate(make_app: AppFactory) -> None:
    app = make_app()
    log: list[str] = []

    @app.step(name="book")
    async def book() -> str:
        log.append("book")
        return "b"

    @book.compensation
    async def unbook(result: str) -> None:
        log.append("unbook")

    @app.step(name="commit", pivot=True)
    async def commit() -> None:
        log.append("commit")

    @app.step(name="notify")
    async def notify() -> None:
        raise NonRetryableError("mail server down")

    @app.workflow(name="pivoted")
    async def pivoted(fail_before_pivot: bool) -> None:
        await book()
        if fail_before_pivot:
            raise ValueError("before pivot")
        await commit()
        await notify()

    async with app:
        with pytest.raises(WorkflowFailedError, match="COMPENSATED"):
            await pivoted(True)
        assert log == ["book", "unbook"]
        log.clear()
        handle = await app.start(pivoted, False)
        with pytest.raises(NonRetryableError):
            await handle.result()
        assert log == ["book", "commit"]  # past the pivot: no rollback, only forward
        assert (await handle.status()).status is WorkflowStatus.ERROR


async def test_ad_hoc_and_parallel_compensations(make_app: AppFactory) -> None:
    app = make_app()
    log: list[str] = []
    gate = asyncio.Event()

    def undo_external(name: str) -> None:  # a plain function, registered ad hoc
        log.append(f"undo {name}")

    @app.step(name="branch")
    async def branch(name: str, delay: float) -> str:
        await asyncio.sleep(delay)
        if name == "bad":
            await gate.wait()
            raise NonRetryableError("branch failed")
        if name == "slow":
            gate.set()
        return name

    @branch.compensation
    async def unbranch(name: str, delay: float, result: str) -> None:
        log.append(f"unbranch {result}")

    @app.workflow(name="fanout")
    async def fanout() -> None:
        await app.compensate(undo_external, "before")
        await asyncio.gather(branch("fast", 0), branch("bad", 0), branch("slow", 0.05))

    async with app:
        with pytest.raises(WorkflowFailedError, match="COMPENSATED"):
            await fanout()
        # "slow" finished after "bad" had failed: it is still compensated, newest first.
        assert log == ["unbranch slow", "unbranch fast", "undo before"]


async def test_child_saga_rolls_back_with_its_parent(make_app: AppFactory) -> None:
    app = make_app()
    log: list[str] = []

    @app.step(name="child_effect")
    async def child_effect(tag: str) -> str:
        log.append(f"do {tag}")
        return tag

    @child_effect.compensation
    async def undo_child_effect(tag: str, result: str) -> None:
        log.append(f"undo {result}")

    @app.workflow(name="child_saga")
    async def child_saga() -> None:
        await child_effect("c1")
        await child_effect("c2")

    @app.step(name="parent_fails")
    async def parent_fails() -> None:
        raise NonRetryableError("parent step failed")

    @app.workflow(name="parent_saga")
    async def parent_saga() -> None:
        await child_effect("p1")
        await child_saga()
        await parent_fails()

    async with app:
        handle = await app.start(parent_saga)
        with pytest.raises(WorkflowFailedError, match="COMPENSATED"):
            await handle.result()
        assert log == ["do p1", "do c1", "do c2", "undo c2", "undo c1", "undo p1"]
        [child] = await app.list_workflows(name="child_saga")
        assert child.status is WorkflowStatus.COMPENSATED
        comps = [
            s for s in await app.list_steps(handle.workflow_id) if s.kind is StepKind.COMPENSATION
        ]
        assert [s.compensates_step for s in comps] == [2, 2, 1]


async def test_cancel_with_rollback_and_deadline_rollback(make_app: AppFactory) -> None:
    app = make_app()
    log: list[str] = []
    started = asyncio.Event()

    @app.step(name="hold")
    async def hold(tag: str) -> str:
        log.append(f"hold {tag}")
        return tag

    @hold.compensation
    async def unhold(tag: str, result: str) -> None:
        log.append(f"unhold {tag}")

    @app.workflow(name="waits")
    async def waits(tag: str) -> None:
        await hold(tag)
        started.set()
        await app.sleep(3600)

    @app.workflow(name="deadlined", timeout=0.3)
    async def deadlined() -> None:
        await hold("d")
        await app.sleep(3600)

    async with app:
        handle = await app.start(waits, "c")
        await asyncio.wait_for(started.wait(), 5)
        await app.cancel(handle.workflow_id, compensate=True)
        with pytest.raises(WorkflowFailedError, match="COMPENSATED"):
            await handle.result(timeout=5)
        info = await handle.status()
        assert info.status is WorkflowStatus.COMPENSATED and "cancelled" in (info.error or "")

        late = await app.start(deadlined)
        with pytest.raises(WorkflowFailedError, match="COMPENSATED"):
            await late.result(timeout=5)
        assert "deadline" in ((await late.status()).error or "")
        assert log == ["hold c", "unhold c", "hold d", "unhold d"]


async def test_flaky_compensation_is_retried_until_it_succeeds(make_app: AppFactory) -> None:
    app = make_app()
    attempts: list[int] = []

    @app.step(name="act")
    async def act() -> None:
        return None

    @act.compensation(retry=Retry(max_attempts=5, base_interval=0.01))
    async def undo_act(result: None) -> None:
        attempts.append(app.step_context().attempt)
        if len(attempts) < 3:
            raise ConnectionError("undo endpoint flaky")

    @app.workflow(name="flaky_undo")
    async def flaky_undo() -> None:
        await act()
        raise ValueError("fail")

    async with app:
        handle = await app.start(flaky_undo)
        with pytest.raises(WorkflowFailedError, match="COMPENSATED"):
            await handle.result()
        assert attempts == [1, 2, 3]
        comp = (await app.list_steps(handle.workflow_id))[-1]
        assert comp.kind is StepKind.COMPENSATION and comp.attempts == 3


async def test_compensation_failed_and_operator_actions(make_app: AppFactory) -> None:
    app = make_app()
    log: list[str] = []
    broken = {"first": True, "second": True}

    @app.step(name="first")
    async def first() -> None:
        log.append("first")

    @first.compensation(retry=FAST)
    async def undo_first(result: None) -> None:
        if broken["first"]:
            raise ConnectionError("first undo down")
        log.append("undo first")

    @app.step(name="second")
    async def second() -> None:
        log.append("second")

    @second.compensation(retry=FAST)
    async def undo_second(result: None) -> None:
        if broken["second"]:
            raise ConnectionError("second undo down")
        log.append("undo second")

    @app.workflow(name="fragile_saga")
    async def fragile_saga() -> None:
        await first()
        await second()
        raise ValueError("business failure")

    async with app:
        handle = await app.start(fragile_saga, workflow_id="fs")
        with pytest.raises(WorkflowFailedError, match="COMPENSATION_FAILED"):
            await handle.result()
        assert (await handle.status()).status is WorkflowStatus.COMPENSATION_FAILED
        with pytest.raises(WorkflowFinishedError):
            await app.cancel("fs", compensate=True)

        broken["second"] = False
        retried = await app.retry_compensation("fs")
        with pytest.raises(WorkflowFailedError, match="COMPENSATION_FAILED"):
            await retried.result()
        assert log == ["first", "second", "undo second"]  # second undone; first still broken

        skipped = await app.skip_compensation("fs", step=1, reason="refunded by hand", by="ops")
        with pytest.raises(WorkflowFailedError, match="COMPENSATED"):
            await skipped.result()
        assert (await skipped.status()).status is WorkflowStatus.COMPENSATED
        history = await app.list_steps("fs")
        last = history[-1]
        assert last.compensates_step == 1 and last.output == {
            "skipped": True,
            "reason": "refunded by hand",
            "by": "ops",
        }
        assert log == ["first", "second", "undo second"]
        with pytest.raises(WorkflowStateError):
            await app.retry_compensation("fs")


async def test_retry_compensation_keeps_the_failed_forward_step(make_app: AppFactory) -> None:
    app = make_app()
    calls: list[str] = []
    undo_works = {"value": False}

    @app.step(name="book")
    async def book() -> None:
        calls.append("book")

    @book.compensation(retry=FAST)
    async def unbook(result: None) -> None:
        if not undo_works["value"]:
            raise ConnectionError("undo down")
        calls.append("unbook")

    @app.step(name="pay")
    async def pay() -> None:
        calls.append("pay")  # would succeed if it were wrongly retried by the rollback retry
        if len(calls) == 2:
            raise NonRetryableError("declined")

    @app.workflow(name="book_and_pay")
    async def book_and_pay() -> None:
        await book()
        await pay()

    async with app:
        handle = await app.start(book_and_pay, workflow_id="bp")
        with pytest.raises(WorkflowFailedError, match="COMPENSATION_FAILED"):
            await handle.result()
        undo_works["value"] = True
        retried = await app.retry_compensation("bp")
        with pytest.raises(WorkflowFailedError, match="COMPENSATED"):
            await retried.result()
        assert calls == ["book", "pay", "unbook"]  # pay was not run again
        kinds = [(s.name, s.status) for s in await app.list_steps("bp")]
        assert kinds == [("book", "SUCCESS"), ("pay", "ERROR"), ("book.compensation", "SUCCESS")]


async def test_compensation_given_to_the_step_decorator_and_history_timing(
    make_app: AppFactory,
) -> None:
    app = make_app()
    log: list[str] = []

    async def cancel_booking(room: str, booking: str) -> None:
        log.append(f"cancel {booking}")

    @app.step(name="book_room", compensation=cancel_booking)
    async def book_room(room: str) -> str:
        log.append(f"book {room}")
        return f"bk-{room}"

    @app.workflow(name="stay")
    async def stay() -> None:
        await book_room("101")
        raise ValueError("no payment")

    async with app:
        handle = await app.start(stay, workflow_id="stay-1")
        with pytest.raises(WorkflowFailedError, match="COMPENSATED"):
            await handle.result()
        assert log == ["book 101", "cancel bk-101"]
        forward, undo = await app.list_steps("stay-1")
        assert forward.compensation == undo.name and undo.compensates_step == 1
        for step in (forward, undo):  # a saga's history reads top to bottom, with timing
            assert step.started_at is not None and step.finished_at is not None
            assert step.started_at <= step.finished_at and step.attempts == 1
        assert forward.finished_at is not None and undo.started_at is not None
        assert forward.finished_at <= undo.started_at
