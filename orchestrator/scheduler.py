"""Cron schedules (six fields, seconds first): each tick runs once however many workers run.

Every worker ticks every schedule; a tick's workflow id is derived from the schedule's name and
the tick time, so the first worker to start it wins and the others get its handle. Schedules
live in the database (declared ones are saved at launch), so any worker runs created ones too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from orchestrator.clock import Clock
from orchestrator.engine.notifications import Waiters
from orchestrator.errors import InvalidArgumentError
from orchestrator.store.base import NOTIFY_SCHEDULES, ScheduleRecord, Store

if TYPE_CHECKING:
    from croniter import croniter

logger = logging.getLogger("orchestrator.scheduler")

REFRESH_SECONDS = 5.0  # schedules changed by another process are seen within this (SQLite)
MAX_CATCH_UP_TICKS = 1000  # a schedule that missed more than this catches up only the latest

# Start a schedule's tick; False when this worker does not run that schedule's workflow.
StartTick = Callable[[ScheduleRecord, dt.datetime], Awaitable[bool]]


def _croniter(cron: str, start: dt.datetime) -> croniter:
    """croniter, imported on first use: most processes (the CLI, services, workers with no
    schedule) never parse a cron expression, and croniter with dateutil costs ~20 ms to load."""
    from croniter import croniter

    return croniter(cron, start, second_at_beginning=True)


def check_cron(cron: object) -> str:
    """Validate a six-field cron expression (seconds first) that fires at least once.

    Raises:
        InvalidArgumentError: not six valid fields, or a date that never comes (February 30).
    """
    from croniter import CroniterError, croniter

    if (
        not isinstance(cron, str)
        or len(cron.split()) != 6
        or not croniter.is_valid(cron, second_at_beginning=True)
    ):
        raise InvalidArgumentError(
            f"invalid schedule {cron!r}: use six cron fields with seconds first, e.g. "
            "'*/15 * * * * *' (every 15 seconds) or '0 0 3 * * *' (03:00 daily)"
        )
    try:
        next_tick(cron, 0)
    except CroniterError as exc:
        raise InvalidArgumentError(
            f"invalid schedule {cron!r}: it never fires ({exc}); use six cron fields with"
            " seconds first and a date that exists"
        ) from exc
    return cron


def tick_id(schedule_name: str, tick: dt.datetime) -> str:
    """The workflow id of one tick: the same on every worker."""
    return f"{schedule_name}@{tick.astimezone(dt.UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"


def ticks_between(cron: str, after_ms: int, until_ms: int, limit: int) -> list[dt.datetime]:
    """The ticks in (after_ms, until_ms], at most the last ``limit`` of them, oldest first.
    Walked back from ``until_ms``, so a long gap costs ``limit`` ticks, not the whole gap."""
    if limit <= 0 or until_ms <= after_ms:
        return []
    start = dt.datetime.fromtimestamp((until_ms + 1) / 1000, tz=dt.UTC)  # until_ms included
    iterator = _croniter(cron, start)
    ticks: list[dt.datetime] = []
    while len(ticks) < limit:
        tick: dt.datetime = iterator.get_prev(dt.datetime)
        if tick.timestamp() * 1000 <= after_ms:
            break
        ticks.append(tick)
    ticks.reverse()
    return ticks


def next_tick(cron: str, after_ms: int) -> dt.datetime:
    start = dt.datetime.fromtimestamp(after_ms / 1000, tz=dt.UTC)
    tick: dt.datetime = _croniter(cron, start).get_next(dt.datetime)
    return tick


def schedule_input(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    try:
        return json.dumps({"args": list(args), "kwargs": kwargs}, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"schedule arguments must be JSON values: {exc}") from exc


class Scheduler:
    """Ticks the stored schedules in this worker."""

    def __init__(self, store: Store, clock: Clock, waiters: Waiters, start_tick: StartTick) -> None:
        self.store = store
        self.clock = clock
        self.waiters = waiters
        self.start_tick = start_tick
        self.stopping = False
        self._cursor: dict[str, int] = {}  # schedule name -> the last tick handled here (ms)
        # schedule name -> its updated_at when last seen: a change (a resume, a new definition)
        # seen later means "from then on" for a schedule that does not catch up, even when
        # this worker never saw the pause itself (notifications coalesce; SQLite polls).
        self._seen: dict[str, int | None] = {}
        self._broken: set[tuple[str, str]] = set()  # (name, cron) already logged as failing
        # When the last pass began to list the schedules (clock ms), and the names it listed
        # (paused ones too): None before the first pass.
        self._last_listing: tuple[int, frozenset[str]] | None = None

    def _due(self, schedule: ScheduleRecord, now_ms: int) -> list[dt.datetime]:
        cursor = self._cursor.get(schedule.name)
        if cursor is None:  # first sight: catch up from the last stored tick, or start now
            cursor = now_ms
            if schedule.catch_up and schedule.last_tick_ms is not None:
                cursor = schedule.last_tick_ms
            elif self._last_listing is not None and schedule.name not in self._last_listing[1]:
                # Created since the last pass listed the schedules: its ticks since then are
                # due (one falling between its creation and this pass is not skipped), from
                # its creation when that is known on this clock.
                cursor = self._last_listing[0]
                if schedule.updated_at is not None and cursor < schedule.updated_at <= now_ms:
                    cursor = schedule.updated_at
        elif (
            not schedule.catch_up
            and schedule.updated_at is not None
            and self._seen.get(schedule.name) != schedule.updated_at
        ):
            cursor = max(cursor, min(schedule.updated_at, now_ms))
        self._cursor[schedule.name] = cursor
        self._seen[schedule.name] = schedule.updated_at
        return ticks_between(schedule.cron, cursor, now_ms, MAX_CATCH_UP_TICKS)

    async def run(self) -> None:
        with self.waiters.subscribe((NOTIFY_SCHEDULES, "")) as changed:
            while not self.stopping:
                due_ms: int | None = None  # the next tick of any schedule (clock ms)
                try:
                    listed_at_ms = self.clock.now_ms()
                    listed = await self.store.list_schedules()
                    schedules = []
                    for schedule in listed:
                        if not schedule.paused:
                            schedules.append(schedule)
                        elif not schedule.catch_up:  # resumed, it starts from then on
                            self._cursor.pop(schedule.name, None)
                    now_ms = self.clock.now_ms()
                    for schedule in schedules:
                        upcoming_ms = await self._tick(schedule, now_ms)
                        if upcoming_ms is not None:
                            due_ms = upcoming_ms if due_ms is None else min(due_ms, upcoming_ms)
                    self._last_listing = (listed_at_ms, frozenset(s.name for s in listed))
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception("scheduler pass failed; retrying")
                # Until the next tick (on the clock), a change of the schedules, or a re-read
                # (another process's changes are not notified to this one on SQLite).
                await changed.wait(due_ms, clock=self.clock, poll_seconds=REFRESH_SECONDS)

    async def _tick(self, schedule: ScheduleRecord, now_ms: int) -> int | None:
        """Start the schedule's due ticks; when its next one comes (None: it cannot tick, a
        cron stored by another version that this one rejects: logged once, the others go on)."""
        try:
            for tick in self._due(schedule, now_ms):
                await self._fire(schedule, tick)
            upcoming = next_tick(schedule.cron, self._cursor[schedule.name])
        except (ValueError, KeyError) as exc:  # croniter's CroniterError is a ValueError
            if (schedule.name, schedule.cron) not in self._broken:
                self._broken.add((schedule.name, schedule.cron))
                logger.error(
                    "schedule %s cannot tick (cron %r: %s); the other schedules go on",
                    schedule.name,
                    schedule.cron,
                    exc,
                )
            return None
        return int(upcoming.timestamp() * 1000)

    async def _fire(self, schedule: ScheduleRecord, tick: dt.datetime) -> None:
        tick_ms = int(tick.timestamp() * 1000)
        try:
            if await self.start_tick(schedule, tick):  # not another application's: mark it
                await self.store.mark_schedule_tick(schedule.name, tick_ms)
        except Exception:
            logger.exception("schedule %s could not start its tick %s", schedule.name, tick)
        self._cursor[schedule.name] = max(self._cursor.get(schedule.name, 0), tick_ms)
