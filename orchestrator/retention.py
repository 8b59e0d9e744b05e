"""Retention: finished workflows deleted once they are older than their final status's
retention (``Orchestrator(retention="SUCCESS=7d,COMPENSATED=30d")`` or the setting
``ORCHESTRATOR_RETENTION``). Statuses not listed are kept forever; a saga that needs a person
(COMPENSATION_FAILED) only goes when listed explicitly.

Every worker sweeps on an interval, and the sweep runs once across them all without a leader:
each batch is one transaction that selects its rows ``FOR UPDATE SKIP LOCKED`` (PostgreSQL; on
SQLite the database's write lock serializes batches) and deletes them, so two workers never
delete the same rows nor wait on each other, and no lock outlives a batch.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

from orchestrator.errors import ConfigurationError, StoreError
from orchestrator.metrics import Metrics
from orchestrator.store.base import NewAudit, Store
from orchestrator.types import TERMINAL_STATUSES, WorkflowStatus

logger = logging.getLogger("orchestrator.retention")

SWEEP_SECONDS = 60.0  # real time between two sweeps of one worker
BATCH = 500  # workflows deleted per transaction
ACTOR = "retention"  # the audit log's actor of a sweep

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")

RetentionSpec = str | Mapping[WorkflowStatus | str, dt.timedelta | float | int | str]


def parse_duration(text: str) -> float:
    """Seconds of a duration such as ``30s``, ``15m``, ``12h`` or ``7d``."""
    match = _DURATION.match(text)
    if match is None:
        raise ConfigurationError(
            f"retention duration {text!r} is not a number followed by s, m, h or d (e.g. 7d)"
        )
    return float(match.group(1)) * _UNITS[match.group(2)]


def _status(name: object) -> WorkflowStatus:
    try:
        status = WorkflowStatus(str(name).strip().upper())
    except ValueError:
        raise ConfigurationError(
            f"retention: unknown status {name!r}; use final statuses "
            f"({', '.join(sorted(TERMINAL_STATUSES))})"
        ) from None
    if not status.is_terminal:
        raise ConfigurationError(
            f"retention: {status} is not a final status; only finished workflows are deleted "
            f"({', '.join(sorted(TERMINAL_STATUSES))})"
        )
    return status


def _seconds(value: object, status: WorkflowStatus) -> float:
    if isinstance(value, dt.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, str):
        seconds = parse_duration(value)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise ConfigurationError(
            f"retention of {status}: {value!r} is not a duration (timedelta, seconds or '7d')"
        )
    if seconds < 0:
        raise ConfigurationError(f"retention of {status} must not be negative")
    return seconds


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How long finished workflows of each final status are kept, in seconds (absent: for
    ever)."""

    seconds: Mapping[WorkflowStatus, float]

    @classmethod
    def parse(cls, spec: RetentionSpec | None) -> RetentionPolicy:
        """A policy from ``"SUCCESS=7d,COMPENSATED=30d"`` or a mapping of status -> duration
        (timedelta, seconds, or text); None or "" keeps everything.

        Raises:
            ConfigurationError: naming the part that is not ``STATUS=DURATION`` with a final
                status listed once and a duration such as 30s, 15m, 12h, 7d.
        """
        if spec is None:
            return cls({})
        pairs: list[tuple[object, object]]
        if isinstance(spec, str):
            pairs = []
            for part in (p.strip() for p in spec.split(",")):
                if not part:
                    continue
                name, sep, duration = part.partition("=")
                if not sep or not name.strip() or not duration.strip():
                    raise ConfigurationError(
                        f"retention part {part!r} is not STATUS=DURATION (e.g. SUCCESS=7d)"
                    )
                pairs.append((name, duration))
        elif isinstance(spec, Mapping):
            pairs = list(spec.items())
        else:
            raise ConfigurationError(
                "retention must be text like 'SUCCESS=7d,COMPENSATED=30d' or a mapping"
            )
        seconds: dict[WorkflowStatus, float] = {}
        for key, value in pairs:
            status = _status(key)
            if status in seconds:
                raise ConfigurationError(f"retention: {status} is listed twice")
            seconds[status] = _seconds(value, status)
        return cls(seconds)

    def __bool__(self) -> bool:
        return bool(self.seconds)

    def describe(self) -> str:
        """The policy as the setting writes it (seconds)."""
        return ",".join(f"{status}={seconds:g}s" for status, seconds in self.seconds.items())


class RetentionSweep:
    """Deletes expired finished workflows in batches, every ``interval`` seconds while it
    runs (started at launch by workers, like StrandedWatch)."""

    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        policy: RetentionPolicy,
        *,
        interval: float = SWEEP_SECONDS,
        batch: int = BATCH,
    ) -> None:
        if batch < 1:
            raise ConfigurationError("the retention batch must be at least 1 workflow")
        self.store = store
        self.metrics = metrics
        self.policy = policy
        self.interval_ms = max(int(interval * 1000), 1)
        self.batch = batch

    async def sweep(self) -> dict[WorkflowStatus, int]:
        """Delete every workflow past its status's retention now, a batch per transaction;
        how many this worker deleted per status. One ``retention`` audit entry records a
        sweep that deleted something (none for an empty sweep: a quiet log)."""
        started = time.perf_counter()
        deleted: dict[WorkflowStatus, int] = {}
        batches = 0
        try:
            for status, seconds in self.policy.seconds.items():
                while True:
                    ids = await self.store.delete_expired(status, int(seconds * 1000), self.batch)
                    if ids:
                        batches += 1
                        deleted[status] = deleted.get(status, 0) + len(ids)
                        self.metrics.workflows_deleted.labels("retention").inc(len(ids))
                    if len(ids) < self.batch:
                        break
        finally:
            self.metrics.retention_sweep_seconds.observe(time.perf_counter() - started)
        if deleted:
            await self.store.record_audit(
                NewAudit(
                    actor=ACTOR,
                    role=None,
                    surface="python",
                    action="retention",
                    workflow_id=None,
                    reason=None,
                    detail=json.dumps(
                        {
                            "deleted": {str(s): n for s, n in deleted.items()},
                            "batches": batches,
                            "policy": self.policy.describe(),
                        }
                    ),
                )
            )
            logger.info(
                "retention deleted %d finished workflows (%s)",
                sum(deleted.values()),
                ", ".join(f"{s}: {n}" for s, n in deleted.items()),
            )
        return deleted

    async def run(self) -> None:
        """Sweep now, then every interval until cancelled. The interval is real time, not the
        engine's clock (a test that moves a FakeClock meets only its own waits on it); the
        ages are read on the database clock. A database that does not answer is logged and
        tried again next interval."""
        while True:
            try:
                await self.sweep()
            except StoreError as error:
                logger.info(
                    "retention sweep failed, retrying in %ss: %s", self.interval_ms / 1000, error
                )
            await asyncio.sleep(self.interval_ms / 1000)
