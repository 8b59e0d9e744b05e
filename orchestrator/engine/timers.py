"""Durable sleep and recorded clock/random reads: replays see the same time and numbers."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random as random_module

from orchestrator import context
from orchestrator.clock import Clock
from orchestrator.engine.run import Attempt, Call, WorkflowRun, durable_run
from orchestrator.errors import InvalidArgumentError
from orchestrator.store.base import StepRecord
from orchestrator.types import StepKind

SLEEP_SECONDS = "orchestrator.sleep.seconds"


def _recorded(run: WorkflowRun, kind: StepKind, value: object) -> Call[object]:
    """A call that records ``value`` (a time, a random number) and returns it; a replay
    returns the value recorded then."""

    async def perform(attempt: Attempt) -> object:
        await run.record_step(
            run.step_record(attempt.number, kind.value, kind, output=json.dumps(value))
        )
        return value

    def replay(recorded: StepRecord) -> object:
        return json.loads(recorded.output) if recorded.output is not None else None

    return Call(kind.value, kind, perform=perform, replay=replay)


async def sleep(seconds: float, clock: Clock | None = None) -> None:
    """Sleep durably: the wake-up time is recorded, so a recovered workflow sleeps only what
    is left. Outside a workflow (or inside a step) this sleeps on ``clock``: the running
    workflow's, else real time."""
    if seconds < 0:
        raise InvalidArgumentError(f"sleep seconds must be >= 0, got {seconds}")
    run = durable_run()
    if run is None:
        current = context.current()  # inside a step: the workflow's clock
        clock = clock or (getattr(current.run, "clock", None) if current is not None else None)
        if clock is None:
            await asyncio.sleep(seconds)
        else:
            await clock.sleep_until(clock.now_ms() + int(seconds * 1000))
        return

    async def perform(attempt: Attempt) -> None:
        wake_at = run.clock.now_ms() + int(seconds * 1000)
        await run.record_step(
            run.step_record(
                attempt.number, StepKind.SLEEP.value, StepKind.SLEEP, output=str(wake_at)
            )
        )
        await run.wait(run.clock.sleep_until(wake_at))

    async def replay(recorded: StepRecord) -> None:
        # A replay sleeps what is left of the recorded wake-up (nothing, if later calls are
        # recorded: it ended), unspanned.
        await run.wait(run.clock.sleep_until(json.loads(recorded.output or "0")))

    await run.call(
        Call(
            StepKind.SLEEP.value,
            StepKind.SLEEP,
            perform=perform,
            replay=replay,
            traced=True,
            attributes={SLEEP_SECONDS: seconds},
        )
    )


async def now() -> dt.datetime:
    """The current time (UTC), recorded inside a workflow so replays see the same instant."""
    run = durable_run()
    if run is None:
        return dt.datetime.now(dt.UTC)
    value = await run.call(_recorded(run, StepKind.NOW, run.clock.now_ms()))
    assert isinstance(value, int)
    return dt.datetime.fromtimestamp(value / 1000, tz=dt.UTC)


async def random() -> float:
    """A random float in [0, 1), recorded inside a workflow so replays see the same number."""
    run = durable_run()
    if run is None:
        return random_module.random()
    value = await run.call(_recorded(run, StepKind.RANDOM, random_module.random()))
    assert isinstance(value, float)
    return value
