"""The application the multi-process tests run in real worker processes:

    DATABASE_URL=… LEDGER_PATH=… ORCHESTRATOR_LEASE_SECONDS=2 PYTHONPATH=. \
        python -m orchestrator.cli worker tests.workers.worker_app:app --executor-id w1

Every effect goes to the Journal at ``LEDGER_PATH`` (tests/workers/__init__.py): the Ledger
counts attempts and applies each key once; the ``spans`` table says which executor ran the
attempt and when (``time.time()``), so the tests can measure overlap and takeovers. With
``WORKERS_SCHEDULE=1`` the workers also register an every-second schedule.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time

from orchestrator import NonRetryableError, Orchestrator, StepFunction
from tests.workers import QUEUES, SCHEDULED, Journal

app = Orchestrator("workers", os.environ["DATABASE_URL"], app_version="workers-test")
journal = Journal(os.environ["LEDGER_PATH"])

for _name, _options in QUEUES.items():
    app.queue(_name, **_options)


async def effect(key: str, label: str, started: float) -> None:
    """Apply the effect ``key`` (a blocking SQLite write: off the event loop)."""
    await asyncio.to_thread(journal.record, key, label, app.executor_id, started)


@app.step()
async def timed(label: str, ms: int) -> str:
    """Work for ``ms`` milliseconds, then apply the effect keyed by this step."""
    started = time.time()
    await asyncio.sleep(ms / 1000)
    key = app.step_context().idempotency_key
    await effect(key, label, started)
    return key


@app.step()
async def paced(ms: int) -> str:
    """Apply the effect first, then work for ``ms``: a worker paused inside this step has
    applied its effect already, so any later effect of that worker is a step it should not
    have started."""
    key = app.step_context().idempotency_key
    await effect(key, "paced", time.time())
    await asyncio.sleep(ms / 1000)
    return key


@app.workflow()
async def short(n: int) -> str:
    return await timed("limits", 15 + n % 26)


@app.workflow()
async def quick(label: str) -> str:
    return await timed(label, 0)


@app.workflow()
async def blocker() -> str:
    """Hold a queue slot until the test sends ``go``."""
    await app.recv("go", timeout=120)
    return await timed("prio", 0)


@app.workflow()
async def held(tag: str) -> str:
    await app.recv("go", timeout=120)
    await timed("dedup", 0)
    return tag


@app.workflow()
async def slow(label: str, ms: int) -> str:
    return await timed(label, ms)


@app.workflow()
async def long_run(steps: int, ms: int) -> int:
    for _ in range(steps):
        await paced(ms)
    return steps


@app.step()
async def paced_undoable(ms: int, slow_on: str) -> str:
    """``paced`` with a compensation, slow from step 2 on and only on executor ``slow_on``: a
    saga that worker can be paused in the middle of, and that another worker finishes fast."""
    key = app.step_context().idempotency_key
    await effect(f"fwd:{key}", "paced", time.time())
    if app.executor_id == slow_on and app.step_context().step_number >= 2:
        await asyncio.sleep(ms / 1000)
    return key


@paced_undoable.compensation
async def undo_paced(ms: int, slow_on: str, forward_key: str) -> None:
    own = app.step_context().idempotency_key
    await effect(f"comp:{own}@{forward_key}", "undo", time.time())


@app.workflow()
async def paced_saga(steps: int, ms: int, slow_on: str) -> int:
    for _ in range(steps):
        await paced_undoable(ms, slow_on)
    return steps


@app.workflow()
async def gapped(steps: int, ms: int) -> int:
    """Steps that take no time, ``ms`` apart: the workflow mostly waits between steps."""
    for _ in range(steps):
        await asyncio.sleep(ms / 1000)
        await paced(0)
    return steps


# -- sagas: three compensable steps of 10-50 ms; step 3 fails (before its effect) when asked.
class Declined(NonRetryableError):
    """The business failure that rolls a saga back."""


def _saga_ms(n: int, number: int) -> float:
    return (10 + (n * 7 + number * 13) % 41) / 1000


def _saga_step(number: int) -> StepFunction[[int, bool], str]:
    @app.step(name=f"saga{number}")
    async def forward(n: int, fail: bool) -> str:
        started = time.time()
        await asyncio.sleep(_saga_ms(n, number))
        if fail and number == 3:
            raise Declined(f"saga {n} declined at step 3")
        key = app.step_context().idempotency_key
        await effect(f"fwd:{key}", "saga", started)
        return key

    @forward.compensation
    async def undo(n: int, fail: bool, forward_key: str) -> None:
        started = time.time()
        await asyncio.sleep(_saga_ms(n, number))
        own = app.step_context().idempotency_key
        await effect(f"comp:{own}@{forward_key}", "saga", started)

    return forward


SAGA_STEPS = [_saga_step(number) for number in (1, 2, 3)]


@app.workflow()
async def saga(n: int, fail: bool) -> list[str]:
    return [await step(n, fail) for step in SAGA_STEPS]


# -- the every-second schedule (only where the test asks for it: it would run in every test).
@app.step()
async def tick(scheduled: str) -> str:
    await effect(f"tick:{scheduled}", "tick", time.time())
    return scheduled


if os.environ.get("WORKERS_SCHEDULE") == "1":

    @app.workflow(name=SCHEDULED, schedule="* * * * * *")
    async def every_second(scheduled: dt.datetime) -> str:
        return await tick(scheduled.astimezone(dt.UTC).isoformat())
