"""The app `saga up` serves in the OTLP round-trip test (database from DATABASE_URL)."""

from __future__ import annotations

from orchestrator import Orchestrator

app = Orchestrator("traced", executor_id="traced-service", app_version="t")


@app.step(name="double")
async def double(x: int) -> int:
    return 2 * x


@app.workflow(name="add")
async def add(a: int) -> int:
    return await double(a) + 1
