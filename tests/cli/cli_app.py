"""An application for the CLI tests (`saga workflows resume|fork --app tests.cli.cli_app:app`)."""

from __future__ import annotations

import os

from orchestrator import NonRetryableError, Orchestrator

app = Orchestrator("cli", os.environ.get("DATABASE_URL"), app_version="cli-test")
FLAG = os.environ.get("CLI_FLAG", "/nonexistent")


@app.step(name="count")
async def count(x: int) -> int:
    return x + 1


@app.step(name="flaky")
def flaky(x: int) -> int:  # a sync step (it runs in a thread): the file check may block
    if not os.path.exists(FLAG):  # the test creates it to let the step succeed
        raise NonRetryableError("flag missing")
    return x * 10


@app.workflow(name="two_steps")
async def two_steps(x: int) -> int:
    return await flaky(await count(x))
