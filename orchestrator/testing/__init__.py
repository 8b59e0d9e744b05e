"""Testing users' sagas (#19): a ledger of the effects fakes apply (``Ledger``), crash and
failure exploration (``explore``), automatic time skipping, replay of saved histories
(``replay``, ``assert_replays``), and a pytest plugin with fixtures (docs/testing.md)."""

from __future__ import annotations

from orchestrator.testing.explore import (
    Boundary,
    CompensationCoverage,
    ExplorationReport,
    ForcedFailure,
    Scenario,
    Violation,
    explore,
)
from orchestrator.testing.ledger import Application, Ledger
from orchestrator.testing.replay import assert_replays, load_history, replay
from orchestrator.testing.timeskip import TimeSkippingClock, skip_time, time_skipping_app

__all__ = [
    "Application",
    "Boundary",
    "CompensationCoverage",
    "ExplorationReport",
    "ForcedFailure",
    "Ledger",
    "Scenario",
    "TimeSkippingClock",
    "Violation",
    "assert_replays",
    "explore",
    "load_history",
    "replay",
    "skip_time",
    "time_skipping_app",
]
