"""A stack whose child process dies after starting: `saga up` must report it and stop."""

from __future__ import annotations

import sys

from orchestrator import Orchestrator
from orchestrator.cli.stack import ChildProcess, Stack, UpContext

app = Orchestrator("dying", "sqlite:///:memory:")


def stack(up: UpContext) -> Stack:
    crash = [sys.executable, "-c", "import time, sys; time.sleep(1.5); sys.exit(3)"]
    sleeper = [sys.executable, "-c", "import time; time.sleep(120)"]
    return Stack(
        orchestrator=app,
        processes=[
            ChildProcess("crasher", crash, health_path=None),
            ChildProcess("sleeper", sleeper, health_path=None),
        ],
    )
