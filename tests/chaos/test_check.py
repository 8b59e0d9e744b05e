"""The chaos checker's one allowance (check._cut_short_past_the_pivot): exactly the effect a
cancel with rollback past the pivot may leave unrecorded when the worker dies, nothing else.
The case is seed 441036's order-0660 (8 December): ship recorded as step 8, then notify (9)
applied its effect, the worker was SIGKILLed, a cancel with rollback came, and the worker
that took the saga over ended it CANCELLED."""

from __future__ import annotations

from tests.chaos.check import Step, _cut_short_past_the_pivot

SAGA = "order-0660"


def history(*names: str) -> list[Step]:
    steps = [Step(SAGA, n, name, "step", None, None, n) for n, name in enumerate(names, 1)]
    return [*steps, Step(f"{SAGA}-packing", 1, "pick", "step", None, None, 99)]


SHIPPED = history(
    "book", "charge", "packing", "check_fraud", "recv.deadline", "recv", "sleep", "ship"
)


def test_the_step_in_flight_past_the_pivot_of_a_cancelled_saga_is_allowed() -> None:
    assert _cut_short_past_the_pivot(SAGA, "CANCELLED", SHIPPED, {f"{SAGA}:9"}) == {f"{SAGA}:9"}


def test_nothing_else_is_allowed() -> None:
    for status in ("SUCCESS", "COMPENSATED", None):
        assert _cut_short_past_the_pivot(SAGA, status, SHIPPED, {f"{SAGA}:9"}) == set()
    before_the_pivot = SHIPPED[:7]  # no ship recorded: a cut-short step must be rerun
    assert _cut_short_past_the_pivot(SAGA, "CANCELLED", before_the_pivot, {f"{SAGA}:8"}) == set()
    for unrecorded in ({f"{SAGA}:10"}, {f"{SAGA}:7"}, {f"{SAGA}:9", f"{SAGA}:10"}):
        assert _cut_short_past_the_pivot(SAGA, "CANCELLED", SHIPPED, unrecorded) == set()
    child = {f"{SAGA}-packing:2"}
    assert _cut_short_past_the_pivot(SAGA, "CANCELLED", SHIPPED, child) == set()
