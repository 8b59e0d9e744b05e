"""Testing users' sagas (#19): a ledger of the effects fakes apply (``Ledger``), crash and
failure exploration (``explore``), automatic time skipping, replay of saved histories
(``replay``, ``assert_replays``), and a pytest plugin with fixtures (docs/testing.md)."""

from __future__ import annotations

from orchestrator.testing.ledger import Application, Ledger
from orchestrator.testing.replay import assert_replays, load_history, replay

__all__ = ["Application", "Ledger", "assert_replays", "load_history", "replay"]
