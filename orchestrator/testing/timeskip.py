"""Automatic time skipping: a test clock that jumps to the next due moment whenever every
running workflow waits only on time.

Every wait of the engine goes through its Clock (durable sleeps, recv and get_event timeouts,
retry backoff, step timeouts, deadlines, delays, schedule ticks). ``TimeSkippingClock`` is a
``FakeClock`` that, while ``skipping()`` runs, watches the application: when no step (or
compensation) is executing, nothing has happened for a moment (no durable call began or
ended, no timer was set or fired) and some wait is due later, it moves time to the earliest
such moment. A saga that sleeps three days and times out a recv after one day ends in a
few milliseconds of real time::

    app = time_skipping_app("shop", database_url)
    async with app, app.clock.skipping(app):
        handle = await app.start(refund_window, order_id)
        assert await handle.result() == "expired"

Limits: time moves only while nothing happens. A step that waits on real I/O (an HTTP call to
a real server, ``asyncio.sleep``) holds time still until it returns, which is right; a test
that sends a message "later" (after real time passes) will find that the recv waiting for it
timed out already: send it before, or drive the workflow from a step. The lease's renewals
are not jump targets (they tick forever): ``time_skipping_app`` gives the app a lease of a
year so that a jump never outlives it.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from orchestrator.app import Orchestrator
from orchestrator.clock import FakeClock, Timer
from orchestrator.engine.core import LEASE_TASK
from orchestrator.engine.run import Call, RunProbe, WorkflowRun
from orchestrator.types import StepKind

YEAR_SECONDS = 365 * 24 * 3600.0
QUIET_SECONDS = 0.004  # nothing happened for this long (real time): everyone waits
POLL_SECONDS = 0.001
# Calls whose work is the user's own code: time holds still while one runs.
WORKING = frozenset({StepKind.STEP, StepKind.COMPENSATION})


class ActivityProbe:
    """Counts the steps executing now and every durable call's start and end (a RunProbe).
    Another probe may be chained (``inner``): explore's fault injection."""

    def __init__(self, inner: RunProbe | None = None) -> None:
        self.inner = inner
        self.working = 0
        self.events = 0

    def enter(self, run: WorkflowRun, number: int, spec: Call[Any]) -> Call[Any]:
        self.events += 1
        if self.inner is not None:
            spec = self.inner.enter(run, number, spec)
        if spec.kind in WORKING:
            self.working += 1
        return spec

    def performed(self, run: WorkflowRun, number: int, spec: Call[Any]) -> None:
        if self.inner is not None:
            self.inner.performed(run, number, spec)

    def exit(self, run: WorkflowRun, number: int, spec: Call[Any]) -> None:
        self.events += 1
        if spec.kind in WORKING:
            self.working -= 1
        if self.inner is not None:
            self.inner.exit(run, number, spec)

    def backoff(self, run: WorkflowRun, waiting: bool) -> None:
        self.events += 1
        self.working += -1 if waiting else 1  # between attempts the step waits on time
        if self.inner is not None:
            self.inner.backoff(run, waiting)

    def busy(self, run: WorkflowRun, busy: bool) -> None:
        self.events += 1
        self.working += 1 if busy else -1  # (a deadline's cancel: its writes come first)
        if self.inner is not None:
            self.inner.busy(run, busy)


class TimeSkippingClock(FakeClock):
    """A FakeClock that moves itself while ``skipping()`` runs (see the module docstring);
    ``advance``/``set`` still work by hand."""

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        super().__init__(start_ms)
        self.changes = 0  # timers set or fired: activity
        self.jumps = 0
        self._background: set[Timer] = set()  # the lease's renewals: never a jump target

    def call_at(self, deadline_ms: int, callback: Callable[[], None]) -> Timer:
        self.changes += 1

        def fire() -> None:
            self.changes += 1
            callback()

        timer = super().call_at(deadline_ms, fire)
        task = asyncio.current_task()
        if task is not None and task.get_name() == LEASE_TASK:
            self._background.add(timer)
        return timer

    def next_due(self) -> int | None:
        """When the earliest pending timer other than the lease's is due."""
        pending = [
            (deadline, order, timer)
            for deadline, order, timer in self._timers
            if not timer.cancelled and timer not in self._background
        ]
        self._background = {t for t in self._background if not t.cancelled}  # type: ignore[attr-defined]
        return heapq.nsmallest(1, pending)[0][0] if pending else None

    @asynccontextmanager
    async def skipping(self, app: Orchestrator) -> AsyncIterator[TimeSkippingClock]:
        """Skip time automatically for ``app`` (which runs on this clock) in this block."""
        if app.clock is not self:
            raise ValueError("the app does not run on this clock: build it with clock=")
        state = app.engine.state
        probe = state.probe if isinstance(state.probe, ActivityProbe) else None
        installed = probe is None
        if probe is None:
            probe = ActivityProbe(state.probe)
            state.probe = probe
        task = asyncio.get_running_loop().create_task(self._skip(probe), name="time-skipping")
        try:
            yield self
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            if installed:
                state.probe = probe.inner

    async def _skip(self, probe: ActivityProbe) -> None:
        loop = asyncio.get_running_loop()
        seen = (-1, -1)
        quiet_since = loop.time()
        while True:
            await asyncio.sleep(POLL_SECONDS)
            now = (probe.events, self.changes)
            if now != seen or probe.working:
                seen = now
                quiet_since = loop.time()
                continue
            if loop.time() - quiet_since < QUIET_SECONDS:
                continue
            due = self.next_due()
            if due is None or due <= self._now_ms:
                continue
            self.jumps += 1
            await self.set(due)
            quiet_since = loop.time()


def time_skipping_app(
    app_name: str = "test", database_url: str | None = None, **options: Any
) -> Orchestrator:
    """An Orchestrator on a ``TimeSkippingClock``, with a lease no jump outlives; start the
    skipping with ``async with app.clock.skipping(app):`` (the pytest plugin's fixtures and
    ``explore`` do it for you)."""
    options.setdefault("lease_seconds", YEAR_SECONDS)
    return Orchestrator(app_name, database_url, clock=TimeSkippingClock(), **options)


def skip_time(app: Orchestrator) -> Any:
    """``async with skip_time(app):`` skips time for ``app`` (built by
    ``time_skipping_app``, or with ``clock=TimeSkippingClock()``)."""
    clock = app.clock
    if not isinstance(clock, TimeSkippingClock):
        raise ValueError(
            "time skipping needs the app built on a TimeSkippingClock: "
            "orchestrator.testing.time_skipping_app(...) or Orchestrator(..., clock=...)"
        )
    return clock.skipping(app)
