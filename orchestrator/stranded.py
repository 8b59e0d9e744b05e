"""Never silent about stranded workflows: a worker counts, at launch and then periodically, the
unfinished workflows (PENDING, COMPENSATING) of application versions that no live worker
serves, logs a WARNING naming each version and its count and how to inspect them, and publishes
the counts as the gauge ``orchestrator_workflows_stranded{app_version}``.

A workflow is recovered only by a worker of the version it was recorded with (its code must
replay its history), so after a deploy that changed ``app_version`` the old version's unfinished
workflows wait for a worker that never comes: docs/upgrading.md says what to do about them.
"""

from __future__ import annotations

import asyncio
import logging

from orchestrator.errors import StoreError
from orchestrator.metrics import Metrics
from orchestrator.store.base import Store

logger = logging.getLogger("orchestrator.versions")

INSPECT = "saga workflows list --stranded"
CHECK = "saga upgrade-check MODULE:ATTR"


def describe(counts: dict[str | None, int], own_version: str | None) -> str:
    """The warning's text: how many, of which versions, and what to run."""
    total = sum(counts.values())
    versions = ", ".join(
        f"{version or '(none)'}: {count}"
        for version, count in sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))
    )
    return (
        f"{total} workflow{'s' if total != 1 else ''} stranded: no live worker runs their "
        f"application version ({versions}); this worker runs {own_version or '(none)'}. "
        f"Inspect them with `{INSPECT}`; check they can run on this code with `{CHECK}` "
        "(--adopt moves the compatible ones here), or start a worker of their version "
        "(docs/upgrading.md)"
    )


class StrandedWatch:
    """Counts stranded workflows every ``interval`` seconds while it runs."""

    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        *,
        app_version: str | None,
        interval: float,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.app_version = app_version
        self.interval_ms = max(int(interval * 1000), 1)
        self.last: dict[str | None, int] = {}

    async def check(self) -> dict[str | None, int]:
        """Count now: log a WARNING if any workflow is stranded, update the gauge; the counts.
        A database that does not answer is logged once per check and counted as unknown."""
        try:
            if self.app_version is not None:
                await self.store.see_version(self.app_version)
            counts = await self.store.stranded_counts()
        except StoreError as error:
            logger.info("could not count stranded workflows: %s", error)
            return self.last
        self.metrics.snapshot.stranded = dict(counts)
        if counts:
            logger.warning(describe(counts, self.app_version))
        elif self.last:
            logger.info("no workflow is stranded any more")
        self.last = counts
        return counts

    async def run(self) -> None:
        """Check every interval until cancelled (the first check is the launch's own). The
        interval is real time, not the engine's clock: this is the operator's monitor, not a
        wait of any workflow, and a test that moves a FakeClock should meet only its own
        waits on it."""
        while True:
            await asyncio.sleep(self.interval_ms / 1000)
            await self.check()
