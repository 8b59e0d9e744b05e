"""The shop's Orchestrator: the one application the checkout and refund sagas register with."""

from __future__ import annotations

from orchestrator import Orchestrator

# DATABASE_URL (PostgreSQL) or the embedded SQLite file .orchestrator/shop.db.
app = Orchestrator("shop")
