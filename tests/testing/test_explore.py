"""explore() (#19): every crash point and every step failure of a user's saga, checked."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator import Orchestrator, Retry
from orchestrator.testing import Ledger
from orchestrator.testing.explore import explore
from orchestrator.testing.timeskip import time_skipping_app

ONCE = Retry(max_attempts=1)


def travel(app: Orchestrator, ledger: Ledger, *, idempotent_refund: bool = True) -> Any:
    """A booking saga: hold a seat, charge the card, wait a day for confirmation, issue the
    ticket (the pivot). Fakes record their effects in ``ledger``."""

    @app.step(name="hold_seat")
    async def hold_seat(trip: str) -> str:
        ledger.apply_once("hold")
        return f"seat-{trip}"

    @hold_seat.compensation(retry=ONCE)
    async def release_seat(seat: str, trip: str) -> None:
        ledger.apply_once("release")

    @app.step(name="charge")
    async def charge(trip: str, amount: int) -> str:
        ledger.apply_once("charge")
        return f"ch-{trip}"

    @charge.compensation(retry=ONCE)
    async def refund(charge_id: str, trip: str, amount: int) -> None:
        if idempotent_refund:
            ledger.apply_once("refund")
        else:
            ledger.apply("refund")  # a bug: a refund sent again refunds again

    @app.step(name="issue_ticket", pivot=True)
    async def issue_ticket(trip: str) -> str:
        ledger.apply_once("ticket")
        return f"ticket-{trip}"

    @app.workflow(name="book_trip")
    async def book_trip(trip: str, amount: int) -> str:
        await hold_seat(trip)
        await charge(trip, amount)
        await app.sleep(24 * 3600)  # the airline confirms within a day
        return await issue_ticket(trip)

    return book_trip


async def test_a_correct_saga_explores_clean(database_url: str) -> None:
    ledger = Ledger()
    app = time_skipping_app("explore", database_url)
    book_trip = travel(app, ledger)
    report = await explore(app, book_trip, "lis-ber", 120, ledger=ledger)
    print(report.summary())
    report.assert_ok()
    names = [s.name for s in report.scenarios]
    assert names[0] == "clean" and report.scenarios[0].status.value == "SUCCESS"
    assert "crash after #2 step charge (done, not recorded)" in names
    assert "fail #2 step charge, crash after #3 compensation hold_seat.compensation" in names
    assert all(s.status is not None for s in report.scenarios)
    coverage = report.compensation_coverage
    assert coverage.exercised == ["charge.compensation", "hold_seat.compensation"]
    assert coverage.never_exercised == [] and coverage.steps_without_compensation == []
    assert len(report.scenarios) == 17


async def test_a_refund_applied_without_its_key_is_reported_at_the_crash_point(
    database_url: str,
) -> None:
    ledger = Ledger()
    app = time_skipping_app("explore-bug", database_url)
    book_trip = travel(app, ledger, idempotent_refund=False)
    report = await explore(app, book_trip, "lis-ber", 120, ledger=ledger)
    doubled = [
        v for v in report.violations if v.invariant == "every effect is applied exactly once"
    ]
    assert doubled, report.summary()
    assert all("'refund' applied 2 times" in v.detail for v in doubled)
    # The refund is applied, then the process dies before its record: recovery refunds again.
    assert any(
        v.scenario.endswith("crash after #5 compensation charge.compensation") for v in doubled
    ), report.summary()
    with pytest.raises(AssertionError, match="applied 2 times"):
        report.assert_ok()


async def test_coverage_names_a_step_without_compensation(make_app: Any) -> None:
    app = make_app()
    ledger = Ledger()

    @app.step(name="reserve")
    async def reserve() -> str:
        return "r"

    @reserve.compensation(retry=ONCE)
    async def unreserve(result: str) -> None:
        return None

    @app.step(name="email_customer")  # no compensation: an e-mail cannot be unsent
    async def email_customer() -> None:
        return None

    @app.workflow(name="notify")
    async def notify() -> str:
        await reserve()
        await email_customer()
        return "ok"

    report = await explore(app, notify, ledger=ledger)
    report.assert_ok()
    assert report.compensation_coverage.steps_without_compensation == ["#2 step email_customer"]


async def test_a_saga_that_compensates_past_its_pivot_is_reported(make_app: Any) -> None:
    app = make_app()

    @app.step(name="pay")
    async def pay() -> str:
        return "paid"

    @pay.compensation(retry=ONCE)
    async def refund_payment(result: str) -> None:
        return None

    @app.step(name="ship", pivot=True)
    async def ship() -> str:
        return "shipped"

    @app.step(name="notify")
    async def notify() -> None:
        raise ValueError("the mail server is down")

    @app.workflow(name="order")
    async def order() -> str:
        await pay()
        await ship()
        try:
            await notify()
        except Exception:
            await refund_payment("paid")  # by hand, after the pivot: breaks the rule
        return "done"

    report = await explore(app, order)
    past = [v for v in report.violations if v.invariant == "never compensated past the pivot"]
    assert past and "pay.compensation" in past[0].detail, report.summary()
