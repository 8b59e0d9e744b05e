"""A store built with a clock (a test's FakeClock) reads that time in its SQL (``now_ms()``,
migration 0005 on PostgreSQL), on both stores; and what that makes observable: a schedule's
``updated_at`` moves only when its definition or its pause changes, not when every worker's
launch saves the same declared schedule again (the scheduler reads a move as "from then on")."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from orchestrator.store import Store, create_store
from orchestrator.store.base import ScheduleRecord

START_MS = 1_700_000_000_000


class Time:
    def __init__(self) -> None:
        self.ms = START_MS

    def now_ms(self) -> int:
        return self.ms


@pytest.fixture
def time_() -> Time:
    return Time()


@pytest.fixture
async def timed_store(database_url: str, time_: Time) -> AsyncIterator[Store]:
    store = create_store(database_url, clock_ms=time_.now_ms)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def test_the_sql_clock_is_the_stores_clock(timed_store: Store, time_: Time) -> None:
    assert await timed_store.now_ms() == START_MS
    time_.ms += 86_400_000
    assert await timed_store.now_ms() == START_MS + 86_400_000


async def test_a_schedule_saved_again_unchanged_keeps_its_updated_at(
    timed_store: Store, time_: Time
) -> None:
    hourly = ScheduleRecord("report", "wf", "0 0 * * * *", '{"args":[],"kwargs":{}}')
    first = await timed_store.save_schedule(hourly, replace=True)
    assert first.updated_at == START_MS
    time_.ms += 1000
    again = await timed_store.save_schedule(hourly, replace=True)  # another worker's launch
    assert again.updated_at == START_MS
    time_.ms += 1000
    changed = await timed_store.save_schedule(
        ScheduleRecord("report", "wf", "0 30 * * * *", hourly.input), replace=True
    )
    assert changed.updated_at == START_MS + 2000
    time_.ms += 1000
    paused = await timed_store.set_schedule_paused("report", True)
    assert paused is not None and paused.updated_at == START_MS + 3000
