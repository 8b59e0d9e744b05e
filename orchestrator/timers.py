"""Durable sleep and recorded clock/random reads: replays see the same time and numbers."""

from __future__ import annotations

import datetime as dt
import json
import random as random_module

from orchestrator import context
from orchestrator.errors import InvalidArgumentError
from orchestrator.executor import WorkflowRun
from orchestrator.store.base import StepRecord
from orchestrator.types import StepKind


def _durable(operation: str) -> WorkflowRun | None:
    """The run to record in, or None outside a workflow (or inside a step): a plain call."""
    current = context.current()
    if current is None or current.step is not None:
        return None
    return current.run


async def _recorded_value(run: WorkflowRun, kind: StepKind, value: object) -> object:
    """Return the value recorded at the next step number, or record ``value`` there."""
    number = await run.begin()
    recorded = run.replayed(number, kind.value)
    if recorded is not None:
        return json.loads(recorded.output) if recorded.output is not None else None
    run.check_runnable()
    await run.checkpoint(
        StepRecord(
            run.workflow_id, number, kind.value, kind, output=json.dumps(value), epoch=run.epoch
        )
    )
    return value


async def sleep(seconds: float) -> None:
    """Sleep durably: the wake-up time is recorded, so a recovered workflow sleeps only what
    is left. Outside a workflow this is ``asyncio.sleep`` on the same clock."""
    if seconds < 0:
        raise InvalidArgumentError(f"sleep seconds must be >= 0, got {seconds}")
    current = context.current()
    run = _durable("sleep")
    if run is None:
        if current is not None:
            clock = current.run.clock
            await clock.sleep_until(clock.now_ms() + int(seconds * 1000))
            return
        import asyncio

        await asyncio.sleep(seconds)
        return
    number = await run.begin()
    recorded = run.replayed(number, StepKind.SLEEP.value)
    if recorded is not None:  # a replay sleeps what is left of the recorded wake-up, unspanned
        await run.wait(run.clock.sleep_until(json.loads(recorded.output or "0")))
        return
    run.check_runnable()
    with run.tracing.durable(
        run, StepKind.SLEEP, "sleep", number, extra={"orchestrator.sleep.seconds": seconds}
    ):
        wake_at = run.clock.now_ms() + int(seconds * 1000)
        await run.checkpoint(
            StepRecord(
                run.workflow_id,
                number,
                StepKind.SLEEP.value,
                StepKind.SLEEP,
                output=str(wake_at),
                epoch=run.epoch,
            )
        )
        await run.wait(run.clock.sleep_until(wake_at))


async def now() -> dt.datetime:
    """The current time (UTC), recorded inside a workflow so replays see the same instant."""
    run = _durable("now")
    if run is None:
        return dt.datetime.now(dt.UTC)
    value = await _recorded_value(run, StepKind.NOW, run.clock.now_ms())
    assert isinstance(value, int)
    return dt.datetime.fromtimestamp(value / 1000, tz=dt.UTC)


async def random() -> float:
    """A random float in [0, 1), recorded inside a workflow so replays see the same number."""
    run = _durable("random")
    if run is None:
        return random_module.random()
    value = await _recorded_value(run, StepKind.RANDOM, random_module.random())
    assert isinstance(value, float)
    return value
