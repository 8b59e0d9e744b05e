"""A saga worker for crash tests (4 compensable steps, step 4 fails), plus the saga checker.

    python -m tests.recovery.saga_worker DATABASE_URL LEDGER WORKFLOW_ID [--crash POINT]

The worker runs (or, launched again with the same executor id and version, recovers) a saga
whose forward step 4 raises NonRetryableError, so steps 3, 2, 1 are compensated. It SIGKILLs
itself at POINT, one of the hooks ``build_saga`` offers:

- ``after-effect-step-N``: forward step N applied its effect, its checkpoint is not written;
- ``before-undo-N``: the compensation of step N starts (the previous one is checkpointed);
- ``after-effect-undo-N``: the compensation of step N applied its effect, no checkpoint yet.

Ledger keys tell forward effects and compensations apart: ``fwd:<key>`` for forward step
``<key>`` (its idempotency key), ``comp:<own key>@<forward key>`` for a compensation: keyed by
the compensation's OWN idempotency key, naming the forward step it received as its result.
``build_saga`` and ``check_saga`` are shared with tests/engine/test_saga_properties.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Sequence

from orchestrator import (
    NonRetryableError,
    Orchestrator,
    StepFunction,
    StepInfo,
    StepKind,
    WorkflowFailedError,
    WorkflowFunction,
)
from tests.recovery.ledger import Ledger, LedgerSnapshot

WORKFLOW_NAME = "saga"
EXECUTOR_ID = "saga-worker"
APP_VERSION = "saga"
FORWARD_STEPS = 4
FAIL_AT = 4

Hook = Callable[[str], Awaitable[None]]


class ForwardFailed(NonRetryableError):
    """The deterministic business failure that makes the saga roll back."""


def forward_entry(key: str) -> str:
    return f"fwd:{key}"


def compensation_entry(own_key: str, forward_key: str) -> str:
    return f"comp:{own_key}@{forward_key}"


def build_saga(
    app: Orchestrator,
    ledger: Ledger,
    *,
    steps: int,
    compensable: Collection[int],
    fail_at: int | None,
    hook: Hook | None = None,
) -> WorkflowFunction[[], list[str]]:
    """Register workflow ``saga``: forward steps ``fwd1..fwd<steps>`` (the ones in
    ``compensable`` with a compensation), step ``fail_at`` failing before any effect. Every
    effect goes to ``ledger``; ``hook(point)`` is awaited at each named crash point."""

    async def at(point: str) -> None:
        if hook is not None:
            await hook(point)

    def make_step(number: int) -> StepFunction[[int], str]:
        @app.step(name=f"fwd{number}")
        async def forward(n: int) -> str:
            if n == fail_at:
                raise ForwardFailed(f"step {n} fails")
            key = app.step_context().idempotency_key
            ledger.record(forward_entry(key))
            await at(f"after-effect-step-{n}")
            return key

        if number in compensable:

            @forward.compensation
            async def undo(n: int, forward_key: str) -> None:
                await at(f"before-undo-{n}")
                ledger.record(compensation_entry(app.step_context().idempotency_key, forward_key))
                await at(f"after-effect-undo-{n}")

        return forward

    forwards = [make_step(number) for number in range(1, steps + 1)]

    @app.workflow(name=WORKFLOW_NAME)
    async def saga() -> list[str]:
        return [await forward(number) for number, forward in enumerate(forwards, start=1)]

    return saga


def check_saga(
    snapshot: LedgerSnapshot,
    steps: Sequence[StepInfo],
    workflow_id: str,
    *,
    forward_steps: int,
    compensable: Collection[int],
    fail_at: int | None,
    crashes: int,
) -> None:
    """The ledger and the recorded history agree with a saga that ran once, whatever crashed:
    each completed forward step applied once; if the saga failed, each completed compensable
    step compensated exactly once (under the compensation's own key, newest first) and nothing
    else; re-executions bounded by ``crashes``."""
    completed = list(range(1, (fail_at or forward_steps + 1)))
    undone = [n for n in reversed(completed) if n in compensable] if fail_at else []

    forward_applied = {e.removeprefix("fwd:") for e in snapshot.applied if e.startswith("fwd:")}
    comps = [e.removeprefix("comp:").split("@") for e in snapshot.applied if e.startswith("comp:")]
    assert len(forward_applied) + len(comps) == len(snapshot.applied), snapshot.applied
    assert forward_applied == {f"{workflow_id}:{n}" for n in completed}, (
        f"forward effects {sorted(forward_applied)}, completed steps {completed}"
    )
    own_keys = Counter(own for own, _ in comps)
    assert all(count == 1 for count in own_keys.values()), f"compensation twice: {own_keys}"
    undone_keys = Counter(forward for _, forward in comps)
    assert all(count == 1 for count in undone_keys.values()), f"undone twice: {undone_keys}"
    assert set(undone_keys) <= forward_applied, "a compensation without its forward step"
    assert set(undone_keys) == {f"{workflow_id}:{n}" for n in undone}, (
        f"compensated {sorted(undone_keys)}, expected steps {undone}"
    )
    extra = sum(snapshot.attempts.values()) - len(snapshot.applied)
    assert extra <= crashes, f"{extra} re-executions for {crashes} crashes: {snapshot.attempts}"

    # The history: forward steps in order (the failing one as ERROR), then the compensations
    # in reverse order of completion, each pointing at its forward step and at its ledger row.
    history = [(s.step_number, s.kind, s.status, s.compensates_step) for s in steps]
    forward = [(n, StepKind.STEP, "SUCCESS", None) for n in completed]
    if fail_at is not None:
        forward.append((fail_at, StepKind.STEP, "ERROR", None))
    first = len(forward) + 1
    rollback = [(first + i, StepKind.COMPENSATION, "SUCCESS", n) for i, n in enumerate(undone)]
    assert history == forward + rollback, history
    ledger_of = dict(comps)
    for step in steps[len(forward) :]:
        assert ledger_of.get(step.idempotency_key) == f"{workflow_id}:{step.compensates_step}", (
            f"compensation step {step.step_number} vs ledger {ledger_of}"
        )


def kill_self(point: str) -> Hook:
    async def hook(reached: str) -> None:
        if reached == point:
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("database_url")
    parser.add_argument("ledger")
    parser.add_argument("workflow_id")
    parser.add_argument("--crash")
    options = parser.parse_args()
    app = Orchestrator(
        "saga-crash", options.database_url, executor_id=EXECUTOR_ID, app_version=APP_VERSION
    )
    saga = build_saga(
        app,
        Ledger(options.ledger),
        steps=FORWARD_STEPS,
        compensable=range(1, FORWARD_STEPS + 1),
        fail_at=FAIL_AT,
        hook=kill_self(options.crash) if options.crash else None,
    )
    async with app:  # launching recovers the saga a killed worker left PENDING/COMPENSATING
        handle = await app.start(saga, workflow_id=options.workflow_id)
        print("started", flush=True)
        try:
            print("result", await handle.result(timeout=60), flush=True)
        except WorkflowFailedError as failure:
            print("status", failure.status, flush=True)


if __name__ == "__main__":
    asyncio.run(main())
