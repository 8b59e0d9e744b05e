"""The cron arithmetic of the scheduler: which expressions are accepted, which ticks fall in a
window (after, until] and how many are kept, the workflow id of a tick, the stored input of a
schedule, and where a worker starts ticking a schedule it sees (the catch-up rules of ``_due``).
All in UTC, whatever the machine's zone. A few runs of the Scheduler on a FakeClock and an
SQLite store in memory check that a tick fires once the clock reaches it."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from orchestrator import Orchestrator
from orchestrator.clock import FakeClock
from orchestrator.engine.notifications import Waiters
from orchestrator.errors import InvalidArgumentError
from orchestrator.scheduler import (
    MAX_CATCH_UP_TICKS,
    Scheduler,
    check_cron,
    next_tick,
    schedule_input,
    tick_id,
    ticks_between,
)
from orchestrator.store import SQLiteStore
from orchestrator.store.base import ScheduleRecord
from tests.clocks import armed_at, until

EVERY_SECOND = "* * * * * *"
HOURLY = "0 0 * * * *"
DAILY_AT_3 = "0 0 3 * * *"
NO_ARGUMENTS = '{"args":[],"kwargs":{}}'


def at(year: int, month: int, day: int, *hour_minute_second: int) -> dt.datetime:
    """A UTC datetime: ``at(2024, 1, 1, 3)`` is 2024-01-01T03:00:00Z."""
    hour, minute, second = (*hour_minute_second, 0, 0, 0)[:3]
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)


def ms(*fields: int) -> int:
    """Epoch milliseconds of a UTC time."""
    return int(at(*fields).timestamp() * 1000)


# -- check_cron -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cron",
    [EVERY_SECOND, "*/15 * * * * *", DAILY_AT_3, "0 */5 * * * *", "30 0 12 1 1 *", "0 0 9 * * MON"],
)
def test_a_six_field_expression_is_returned_as_given(cron: str) -> None:
    assert check_cron(cron) is cron


@pytest.mark.parametrize(
    "cron",
    [
        "* * * * *",  # classic five-field cron: no seconds
        "0 0 3 * * * 2030",  # seven fields (a year)
        "60 * * * * *",  # second 60
        "0 60 * * * *",  # minute 60
        "0 0 24 * * *",  # hour 24
        "0 0 0 0 * *",  # day 0
        "0 0 0 * 13 *",  # month 13
        "*/0 * * * * *",  # a zero step
        "a b c d e f",
        "@hourly",  # an alias is not six fields
        "",
        "   ",
    ],
)
def test_an_invalid_expression_is_refused_with_a_message_that_shows_the_form(cron: str) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        check_cron(cron)
    message = raised.value.message
    assert message.startswith(f"invalid schedule {cron!r}: ")
    assert "six cron fields with seconds first" in message
    assert "'*/15 * * * * *' (every 15 seconds)" in message
    assert "'0 0 3 * * *' (03:00 daily)" in message
    assert raised.value.http_status == 400
    assert raised.value.code == "invalid_argument"


@pytest.mark.parametrize("cron", [None, 15, 1.5, ["*"] * 6, b"* * * * * *"])
def test_a_value_that_is_not_a_string_is_refused_naming_it(cron: object) -> None:
    with pytest.raises(InvalidArgumentError, match="six cron fields") as raised:
        check_cron(cron)
    assert raised.value.message.startswith(f"invalid schedule {cron!r}: ")


def test_an_expression_that_never_fires_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="six cron fields"):
        check_cron("0 0 0 30 2 *")


# -- tick_id --------------------------------------------------------------------------------


def test_a_tick_id_is_the_name_then_the_utc_second() -> None:
    assert tick_id("nightly_report", at(2025, 1, 31, 3)) == "nightly_report@2025-01-31T03:00:00Z"


def test_a_tick_id_is_written_in_utc_whatever_the_zone_of_the_tick() -> None:
    paris = dt.timezone(dt.timedelta(hours=1))
    tick = dt.datetime(2025, 1, 1, 0, 30, 5, tzinfo=paris)
    assert tick_id("s", tick) == "s@2024-12-31T23:30:05Z"


def test_a_tick_id_truncates_fractions_of_a_second() -> None:
    tick = dt.datetime(2025, 6, 1, 12, 0, 59, 999_999, tzinfo=dt.UTC)
    assert tick_id("s", tick) == "s@2025-06-01T12:00:59Z"


def test_every_worker_derives_the_same_tick_id_from_the_same_tick() -> None:
    """The id is the idempotency key: the ticks computed on two workers name one workflow."""
    first = ticks_between(HOURLY, ms(2025, 1, 1), ms(2025, 1, 1, 1), 10)
    second = [next_tick(HOURLY, ms(2025, 1, 1, 0, 59, 59))]
    assert [tick_id("h", tick) for tick in first] == ["h@2025-01-01T01:00:00Z"]
    assert [tick_id("h", tick) for tick in second] == ["h@2025-01-01T01:00:00Z"]


# -- ticks_between --------------------------------------------------------------------------


def test_the_window_excludes_its_start_and_includes_its_end() -> None:
    ticks = ticks_between(HOURLY, ms(2024, 1, 1, 0), ms(2024, 1, 1, 3), 100)
    assert ticks == [at(2024, 1, 1, 1), at(2024, 1, 1, 2), at(2024, 1, 1, 3)]


def test_a_tick_one_millisecond_after_the_start_is_in_the_window() -> None:
    tick_ms = ms(2024, 1, 1, 5)
    assert ticks_between(HOURLY, tick_ms - 1, tick_ms, 100) == [at(2024, 1, 1, 5)]
    assert ticks_between(HOURLY, tick_ms - 1, tick_ms - 1, 100) == []


def test_an_empty_window_has_no_tick_even_on_a_tick() -> None:
    tick_ms = ms(2024, 1, 1, 5)
    assert ticks_between(HOURLY, tick_ms, tick_ms, 100) == []
    assert ticks_between(EVERY_SECOND, tick_ms, tick_ms, 100) == []


def test_a_window_that_ends_before_it_starts_has_no_tick() -> None:
    assert ticks_between(EVERY_SECOND, ms(2024, 1, 1, 5), ms(2024, 1, 1, 4), 100) == []


def test_fractions_of_a_second_at_both_ends() -> None:
    start = ms(2024, 1, 1) + 500
    ticks = ticks_between(EVERY_SECOND, start, start + 3000, 100)
    assert ticks == [at(2024, 1, 1, 0, 0, 1), at(2024, 1, 1, 0, 0, 2), at(2024, 1, 1, 0, 0, 3)]


def test_a_window_without_a_tick_is_empty() -> None:
    assert ticks_between(DAILY_AT_3, ms(2024, 1, 1, 3, 0, 1), ms(2024, 1, 2, 2, 59, 59), 100) == []


def test_every_fifteen_seconds_over_a_minute() -> None:
    ticks = ticks_between("*/15 * * * * *", ms(2024, 1, 1, 12), ms(2024, 1, 1, 12, 1), 100)
    assert [(tick.minute, tick.second) for tick in ticks] == [(0, 15), (0, 30), (0, 45), (1, 0)]


def test_the_limit_keeps_the_latest_ticks_in_order() -> None:
    ticks = ticks_between(EVERY_SECOND, ms(2024, 1, 1), ms(2024, 1, 1, 0, 0, 10), 3)
    assert ticks == [at(2024, 1, 1, 0, 0, 8), at(2024, 1, 1, 0, 0, 9), at(2024, 1, 1, 0, 0, 10)]


def test_a_limit_above_the_count_keeps_every_tick() -> None:
    ticks = ticks_between(HOURLY, ms(2024, 1, 1), ms(2024, 1, 1, 2), 1000)
    assert ticks == [at(2024, 1, 1, 1), at(2024, 1, 1, 2)]


def test_a_limit_of_zero_keeps_no_tick() -> None:
    assert ticks_between(EVERY_SECOND, ms(2024, 1, 1), ms(2024, 1, 1, 0, 0, 10), 0) == []


def test_ticks_are_utc_datetimes() -> None:
    ticks = ticks_between(DAILY_AT_3, ms(2024, 1, 1), ms(2024, 1, 3), 100)
    assert ticks == [at(2024, 1, 1, 3), at(2024, 1, 2, 3)]
    for tick in ticks:
        assert isinstance(tick, dt.datetime)
        assert tick.tzinfo is dt.UTC
        assert tick.microsecond == 0


def test_daily_ticks_cross_the_end_of_a_leap_february() -> None:
    ticks = ticks_between("0 0 0 * * *", ms(2024, 2, 28, 12), ms(2024, 3, 2), 100)
    assert ticks == [at(2024, 2, 29), at(2024, 3, 1), at(2024, 3, 2)]


def test_hourly_ticks_cross_the_end_of_a_year() -> None:
    ticks = ticks_between(HOURLY, ms(2024, 12, 31, 22, 30), ms(2025, 1, 1, 1, 30), 100)
    assert ticks == [at(2024, 12, 31, 23), at(2025, 1, 1, 0), at(2025, 1, 1, 1)]


@pytest.fixture
def local_zone_with_dst() -> Iterator[None]:
    """The process's local zone set to US Eastern (DST from 2024-03-10 02:00 local), so a
    dependence on the machine's zone would show."""
    mp = pytest.MonkeyPatch()
    mp.setenv("TZ", "EST5EDT,M3.2.0,M11.1.0")
    time.tzset()
    try:
        assert time.localtime(ms(2024, 3, 9) / 1000).tm_gmtoff == -5 * 3600
        assert time.localtime(ms(2024, 3, 11) / 1000).tm_gmtoff == -4 * 3600
        yield
    finally:
        mp.undo()
        time.tzset()


@pytest.mark.usefixtures("local_zone_with_dst")
def test_ticks_are_in_utc_across_a_local_dst_change() -> None:
    ticks = ticks_between("0 30 1 * * *", ms(2024, 3, 9), ms(2024, 3, 12), 100)
    assert ticks == [at(2024, 3, 9, 1, 30), at(2024, 3, 10, 1, 30), at(2024, 3, 11, 1, 30)]
    gaps = {later - earlier for earlier, later in itertools.pairwise(ticks)}
    assert gaps == {dt.timedelta(days=1)}
    assert tick_id("d", ticks[2]) == "d@2024-03-11T01:30:00Z"
    assert next_tick(DAILY_AT_3, ms(2024, 3, 10, 2, 30)) == at(2024, 3, 10, 3)


# -- next_tick ------------------------------------------------------------------------------


def test_the_next_tick_is_strictly_after_the_given_time() -> None:
    assert next_tick(HOURLY, ms(2024, 1, 1, 1)) == at(2024, 1, 1, 2)
    assert next_tick(HOURLY, ms(2024, 1, 1, 1) - 1) == at(2024, 1, 1, 1)


def test_the_next_tick_of_every_second_after_a_fraction() -> None:
    assert next_tick(EVERY_SECOND, ms(2024, 1, 1) + 1) == at(2024, 1, 1, 0, 0, 1)


def test_the_next_daily_tick_after_today_s_is_tomorrow_s() -> None:
    assert next_tick(DAILY_AT_3, ms(2024, 12, 31, 3) + 1) == at(2025, 1, 1, 3)
    assert next_tick(DAILY_AT_3, ms(2024, 12, 31, 2, 59, 59)) == at(2024, 12, 31, 3)


def test_the_next_tick_of_a_leap_day_schedule_is_years_away() -> None:
    tick = next_tick("0 0 0 29 2 *", ms(2025, 3, 1))
    assert tick == at(2028, 2, 29)
    assert tick.tzinfo is dt.UTC


def test_the_next_tick_is_the_first_of_the_window_that_follows() -> None:
    start = ms(2024, 5, 5, 5, 5, 5) + 123
    tick = next_tick("*/15 * * * * *", start)
    assert tick == at(2024, 5, 5, 5, 5, 15)
    assert ticks_between("*/15 * * * * *", start, int(tick.timestamp() * 1000), 100) == [tick]


# -- schedule_input -------------------------------------------------------------------------


def test_a_schedule_s_input_is_compact_json_of_args_and_kwargs() -> None:
    text = schedule_input(("eu", 3), {"dry_run": True, "note": None})
    assert text == '{"args":["eu",3],"kwargs":{"dry_run":true,"note":null}}'


def test_a_schedule_without_arguments_stores_empty_ones() -> None:
    assert schedule_input((), {}) == NO_ARGUMENTS


def test_a_schedule_s_arguments_keep_nested_json_values() -> None:
    text = schedule_input(([1, {"a": [True]}],), {"k": {"x": 1.5}})
    assert text == '{"args":[[1,{"a":[true]}]],"kwargs":{"k":{"x":1.5}}}'


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        (dt.date(2024, 1, 1), "Object of type date is not JSON serializable"),
        ({1, 2}, "Object of type set is not JSON serializable"),
        (object(), "Object of type object is not JSON serializable"),
    ],
)
def test_arguments_that_are_not_json_values_are_refused(value: object, detail: str) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        schedule_input((value,), {})
    assert raised.value.message == f"schedule arguments must be JSON values: {detail}"
    with pytest.raises(InvalidArgumentError, match="must be JSON values"):
        schedule_input((), {"k": value})


def test_circular_arguments_are_refused() -> None:
    looped: list[object] = []
    looped.append(looped)
    with pytest.raises(InvalidArgumentError, match="must be JSON values: Circular reference"):
        schedule_input((looped,), {})


# -- Scheduler._due: where a worker starts ticking a schedule --------------------------------


@pytest.fixture
async def memory_store() -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(":memory:")
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def started() -> list[tuple[str, dt.datetime]]:
    """The ticks a scheduler started: (schedule name, tick)."""
    return []


@pytest.fixture
def scheduler(memory_store: SQLiteStore, started: list[tuple[str, dt.datetime]]) -> Scheduler:
    async def start_tick(schedule: ScheduleRecord, tick: dt.datetime) -> bool:
        started.append((schedule.name, tick))
        return True

    return Scheduler(memory_store, FakeClock(), Waiters(), start_tick)


def schedule(
    cron: str, *, name: str = "s", catch_up: bool = False, last_tick_ms: int | None = None
) -> ScheduleRecord:
    return ScheduleRecord(
        name=name,
        workflow_name="wf",
        cron=cron,
        input=NO_ARGUMENTS,
        catch_up=catch_up,
        last_tick_ms=last_tick_ms,
    )


async def test_a_schedule_seen_first_starts_after_now_skipping_the_missed_ticks(
    scheduler: Scheduler,
) -> None:
    now = ms(2024, 1, 1, 12)  # a tick of both crons falls exactly now: it is not due
    missed = schedule(HOURLY, last_tick_ms=ms(2024, 1, 1, 9))
    assert scheduler._due(missed, now) == []
    assert scheduler._due(schedule(EVERY_SECOND, name="other"), now) == []


async def test_a_schedule_created_since_the_last_listing_runs_the_ticks_since_then(
    scheduler: Scheduler,
) -> None:
    """A schedule a pass sees first, though it was not in the previous pass's listing, was
    created between the two: a tick in between is due (not skipped as "before now"), from its
    creation on when updated_at is on this clock. One listed before (paused, say) starts now."""
    scheduler._last_listing = (ms(2024, 1, 1, 11, 30), frozenset({"old"}))
    now = ms(2024, 1, 1, 12)  # the pass runs exactly at a tick of both crons
    assert scheduler._due(schedule(HOURLY, name="new"), now) == [at(2024, 1, 1, 12)]
    assert scheduler._due(schedule(HOURLY, name="old"), now) == []
    created_late = dataclasses.replace(
        schedule(EVERY_SECOND, name="created"), updated_at=now - 1_500
    )
    assert scheduler._due(created_late, now) == [at(2024, 1, 1, 11, 59, 59), at(2024, 1, 1, 12)]
    skewed = dataclasses.replace(schedule(HOURLY, name="skewed"), updated_at=now + 60_000)
    assert scheduler._due(skewed, now) == [at(2024, 1, 1, 12)]  # a clock ahead: the listing


async def test_a_schedule_seen_before_is_due_every_tick_since_it_was_seen(
    scheduler: Scheduler,
) -> None:
    """Between two passes of one worker, every tick counts, catch_up or not."""
    hourly = schedule(HOURLY, last_tick_ms=ms(2024, 1, 1, 9))
    assert scheduler._due(hourly, ms(2024, 1, 1, 12, 30)) == []
    due = scheduler._due(hourly, ms(2024, 1, 1, 15))
    assert due == [at(2024, 1, 1, 13), at(2024, 1, 1, 14), at(2024, 1, 1, 15)]


async def test_a_schedule_changed_since_it_was_seen_ticks_from_the_change_on(
    scheduler: Scheduler,
) -> None:
    """A pause and a resume this worker never saw (notifications coalesce; SQLite polls): the
    changed updated_at says the schedule resumed at 13:30, so the ticks of 13:00 (in the pause)
    are skipped, and those after the resume are due. A catch_up schedule runs them all."""
    for catch_up, expected in [
        (False, [at(2024, 1, 1, 14), at(2024, 1, 1, 15)]),
        (True, [at(2024, 1, 1, 13), at(2024, 1, 1, 14), at(2024, 1, 1, 15)]),
    ]:
        name = f"changed-{catch_up}"
        hourly = dataclasses.replace(
            schedule(HOURLY, name=name, catch_up=catch_up), updated_at=ms(2024, 1, 1, 9)
        )
        assert scheduler._due(hourly, ms(2024, 1, 1, 12, 30)) == []
        resumed = dataclasses.replace(hourly, updated_at=ms(2024, 1, 1, 13, 30))
        assert scheduler._due(resumed, ms(2024, 1, 1, 15)) == expected


async def test_a_catch_up_schedule_starts_after_its_last_stored_tick(
    scheduler: Scheduler,
) -> None:
    nightly = schedule(DAILY_AT_3, catch_up=True, last_tick_ms=ms(2024, 1, 1, 3))
    due = scheduler._due(nightly, ms(2024, 1, 4, 3))
    assert due == [at(2024, 1, 2, 3), at(2024, 1, 3, 3), at(2024, 1, 4, 3)]


async def test_a_catch_up_schedule_that_never_ticked_starts_after_now(
    scheduler: Scheduler,
) -> None:
    fresh = schedule(HOURLY, catch_up=True)
    assert scheduler._due(fresh, ms(2024, 1, 1, 12)) == []
    assert scheduler._due(fresh, ms(2024, 1, 1, 13)) == [at(2024, 1, 1, 13)]


async def test_catching_up_keeps_only_the_latest_ticks(scheduler: Scheduler) -> None:
    now = ms(2024, 1, 1, 1)
    behind = schedule(EVERY_SECOND, catch_up=True, last_tick_ms=now - 1_500_000)  # 1,500 missed
    due = scheduler._due(behind, now)
    assert MAX_CATCH_UP_TICKS == 1000
    assert len(due) == MAX_CATCH_UP_TICKS
    assert due[0] == at(2024, 1, 1, 0, 43, 21)  # now - 999 s
    assert due[-1] == at(2024, 1, 1, 1)


async def test_a_tick_fired_is_no_longer_due_and_is_stored(
    scheduler: Scheduler,
    memory_store: SQLiteStore,
    started: list[tuple[str, dt.datetime]],
) -> None:
    stored = await memory_store.save_schedule(schedule(HOURLY, catch_up=True), replace=False)
    assert scheduler._due(stored, ms(2024, 1, 1, 0, 30)) == []
    due = scheduler._due(stored, ms(2024, 1, 1, 2))
    assert due == [at(2024, 1, 1, 1), at(2024, 1, 1, 2)]
    await scheduler._fire(stored, due[0])
    assert started == [("s", at(2024, 1, 1, 1))]
    assert scheduler._due(stored, ms(2024, 1, 1, 2)) == [at(2024, 1, 1, 2)]
    [saved] = await memory_store.list_schedules()
    assert saved.last_tick_ms == ms(2024, 1, 1, 1)


# -- Scheduler.run on a FakeClock -------------------------------------------------------------


async def run_scheduler(
    memory_store: SQLiteStore, clock: FakeClock, started: list[tuple[str, dt.datetime]]
) -> asyncio.Task[None]:
    async def start_tick(schedule: ScheduleRecord, tick: dt.datetime) -> bool:
        started.append((schedule.name, tick))
        return True

    return asyncio.create_task(Scheduler(memory_store, clock, Waiters(), start_tick).run())


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_the_scheduler_fires_a_tick_when_the_clock_reaches_it(
    memory_store: SQLiteStore, started: list[tuple[str, dt.datetime]]
) -> None:
    clock = FakeClock(start_ms=ms(2024, 1, 1, 0, 0, 0) + 500)
    await memory_store.save_schedule(schedule(EVERY_SECOND, name="tick"), replace=False)
    task = await run_scheduler(memory_store, clock, started)
    try:
        await until(lambda: ms(2024, 1, 1, 0, 0, 1) in clock.deadlines(), within=2)
        assert started == []
        await clock.advance(0.5)
        await until(lambda: len(started) == 1, within=2)
        assert started == [("tick", at(2024, 1, 1, 0, 0, 1))]

        async def stored() -> bool:
            [saved] = await memory_store.list_schedules()
            return saved.last_tick_ms == ms(2024, 1, 1, 0, 0, 1)

        await until(stored, within=2)
    finally:
        await stop(task)


async def test_a_broken_schedule_does_not_stop_the_others(
    memory_store: SQLiteStore, started: list[tuple[str, dt.datetime]]
) -> None:
    clock = FakeClock(start_ms=ms(2024, 1, 1, 0, 0, 0) + 500)
    await memory_store.save_schedule(schedule("0 0 0 30 2 *", name="a-never"), replace=False)
    await memory_store.save_schedule(schedule(EVERY_SECOND, name="b-tick"), replace=False)
    task = await run_scheduler(memory_store, clock, started)
    try:
        await until(lambda: ms(2024, 1, 1, 0, 0, 1) in clock.deadlines(), within=10)
        await clock.advance(0.5)
        await until(lambda: len(started) == 1, within=10)
        assert started == [("b-tick", at(2024, 1, 1, 0, 0, 1))]
    finally:
        await stop(task)


# -- catch-up across workers that register different workflows --------------------------------


def reporting_app(url: str, clock: FakeClock, runs: list[dt.datetime]) -> Orchestrator:
    """A worker that registers the hourly, catching-up ``report`` schedule."""
    app = Orchestrator("reports", url, clock=clock, app_version="v1", executor_id="reports")

    @app.workflow(name="report", schedule=HOURLY, catch_up=True)
    async def report(scheduled: dt.datetime) -> None:
        runs.append(scheduled)

    return app


async def run_report_at_one_then_restart_at_two(
    url: str, clock: FakeClock, runs: list[dt.datetime]
) -> None:
    """The reporting worker runs the 01:00 tick and stops; the clock passes 02:00."""
    async with reporting_app(url, clock, runs):
        await armed_at(clock, ms(2024, 1, 1, 1))
        await clock.set(ms(2024, 1, 1, 1))
        await until(lambda: len(runs) == 1)


async def test_a_worker_restarted_runs_the_tick_missed_while_none_ran(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/orch.db"
    clock = FakeClock(start_ms=ms(2024, 1, 1, 0, 0, 1))
    runs: list[dt.datetime] = []
    await run_report_at_one_then_restart_at_two(url, clock, runs)
    await clock.set(ms(2024, 1, 1, 2, 0, 1))  # nobody runs at 02:00
    async with reporting_app(url, clock, runs):
        await until(lambda: len(runs) == 2, within=2)
    assert runs == [at(2024, 1, 1, 1), at(2024, 1, 1, 2)]


async def test_a_worker_without_the_workflow_does_not_mark_its_ticks_as_run(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/orch.db"
    clock = FakeClock(start_ms=ms(2024, 1, 1, 0, 0, 1))
    runs: list[dt.datetime] = []
    await run_report_at_one_then_restart_at_two(url, clock, runs)
    other = Orchestrator("other", url, clock=clock, app_version="v1", executor_id="other")

    @other.workflow(name="unrelated", schedule=HOURLY)
    async def unrelated(scheduled: dt.datetime) -> None:
        return None

    async with other:  # ticks every stored schedule, but cannot start ``report``
        await armed_at(clock, ms(2024, 1, 1, 2))
        await clock.set(ms(2024, 1, 1, 2, 0, 1))
        await armed_at(clock, ms(2024, 1, 1, 3))  # its 02:00 pass is over
    async with reporting_app(url, clock, runs):
        await until(lambda: len(runs) == 2, within=10)
    assert runs == [at(2024, 1, 1, 1), at(2024, 1, 1, 2)]
