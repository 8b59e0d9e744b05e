"""The ways "every effect exactly once" broke under chaos (issue #15), each replayed with real
processes killed by SIGKILL at the point that broke it, on SQLite and on PostgreSQL: the saga
ends as it must, each forward effect and each compensation applied exactly once, in order,
nothing undone past the pivot. See tests/recovery/guarantee_worker.py for the sagas."""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from orchestrator import Orchestrator, StepInfo, StepKind, WorkflowInfo, WorkflowStatus
from tests.processes import run_module
from tests.recovery.ledger import Ledger, LedgerSnapshot

pytestmark = pytest.mark.recovery

W = "order-1"
COMPENSATED, CANCELLED = WorkflowStatus.COMPENSATED, WorkflowStatus.CANCELLED


def run_worker(
    database_url: str, ledger: Path, scenario: str, crash: str | None = None
) -> subprocess.CompletedProcess[str]:
    crashing = ["--crash", crash] if crash else []
    return run_module(
        "tests.recovery.guarantee_worker", database_url, str(ledger), scenario, W, *crashing
    )


async def stored(database_url: str) -> tuple[WorkflowInfo, list[StepInfo]]:
    app = Orchestrator("inspect", database_url, executor_id="inspector", app_version="other")
    async with app:
        return await app.retrieve(W).status(), await app.list_steps(W)


def check(
    snapshot: LedgerSnapshot,
    steps: list[StepInfo],
    *,
    forward: set[str],
    undone: list[str],
    reexecuted: set[str],
) -> None:
    """Each forward effect in ``forward`` applied once and nothing else; the compensations
    undo exactly ``undone`` (forward keys), each once under its own key, in that order."""
    applied_forward = {k.removeprefix("fwd:") for k in snapshot.applied if k.startswith("fwd:")}
    comps = [k.removeprefix("comp:").split("@") for k in snapshot.applied if k[:5] == "comp:"]
    assert applied_forward == forward, (sorted(applied_forward), sorted(forward))
    assert len(applied_forward) + len(comps) == len(snapshot.applied), snapshot.applied
    assert Counter(own for own, _ in comps).most_common(1)[0][1] == 1 if comps else True, comps
    assert sorted(target for _, target in comps) == sorted(undone), (comps, undone)
    # The history's compensations: in the expected order, each the one the ledger saw.
    by_own_key = dict(comps)
    recorded = [s for s in steps if s.kind is StepKind.COMPENSATION]
    assert [by_own_key.get(s.idempotency_key) for s in recorded] == undone, (recorded, comps)
    assert all(s.status == "SUCCESS" for s in recorded), recorded
    again = {key.split(":", 1)[1] for key, n in snapshot.attempts.items() if n > 1}
    assert again == reexecuted, snapshot.attempts


async def crash_then_recover(
    database_url: str, ledger_path: Path, scenario: str, crash: str, crashed_in: WorkflowStatus
) -> subprocess.CompletedProcess[str]:
    """Run the scenario until it SIGKILLs itself at ``crash`` (the saga then ``crashed_in``),
    then again: it recovers the saga and finishes it."""
    first = run_worker(database_url, ledger_path, scenario, crash)
    assert first.returncode == -signal.SIGKILL, (first.returncode, first.stdout, first.stderr)
    assert (await stored(database_url))[0].status is crashed_in
    second = run_worker(database_url, ledger_path, scenario)
    assert second.returncode == 0, second.stderr
    return second


@pytest.mark.parametrize(
    ("scenario", "crash", "first"),
    [("child-then-fail", "before-undo-pack", "pack"), ("sleep-then-fail", "before-undo-book", "")],
)
async def test_a_rollback_resumed_after_a_crash_keeps_its_step_numbers(
    database_url: str, tmp_path: Path, scenario: str, crash: str, first: str
) -> None:
    """#15.1: a child workflow or a durable sleep before the failure; killed as the first
    compensation starts; the recovered rollback compensates everything, once."""
    ledger = Ledger(tmp_path / "ledger.db")
    result = await crash_then_recover(
        database_url, tmp_path / "ledger.db", scenario, crash, WorkflowStatus.COMPENSATING
    )
    assert "status COMPENSATED" in result.stdout, (result.stdout, result.stderr)
    info, steps = await stored(database_url)
    assert info.status is COMPENSATED, info.error
    undone = ([f"{W}-2:1"] if first == "pack" else []) + [f"{W}:1"]
    check(ledger.snapshot(), steps, forward=set(undone), undone=undone, reexecuted=set())


@pytest.mark.parametrize(
    ("scenario", "crash", "again"),
    [
        # #15.3 (crash): charge applied its effect, the saga was cancelled with rollback, and
        # the worker died before charge's checkpoint. Recovery runs charge again (same key:
        # applied once), records it, and refunds it.
        ("cancel-mid-step", "after-effect-charge", {f"{W}:2"}),
        # #15.4: cancelled with rollback while charge runs; the refund is recorded, then the
        # worker dies. Recovery neither replays into the rollback (the recv that followed
        # charge would collide with the refund's record) nor refunds again under a new key.
        ("cancel-then-recv", "before-undo-book", set()),
    ],
    ids=["step-cut-short-is-compensated", "recorded-compensation-not-run-again"],
)
async def test_a_cancel_with_rollback_then_a_crash_undoes_each_step_once(
    database_url: str, tmp_path: Path, scenario: str, crash: str, again: set[str]
) -> None:
    ledger = Ledger(tmp_path / "ledger.db")
    result = await crash_then_recover(
        database_url, tmp_path / "ledger.db", scenario, crash, WorkflowStatus.COMPENSATING
    )
    assert "status COMPENSATED" in result.stdout, (result.stdout, result.stderr)
    info, steps = await stored(database_url)
    assert info.status is COMPENSATED
    undone = [f"{W}:2", f"{W}:1"]
    check(ledger.snapshot(), steps, forward=set(undone), undone=undone, reexecuted=again)


@pytest.mark.parametrize("crash", [None, "after-effect-ship"])
async def test_a_cancel_with_rollback_during_the_pivot_undoes_nothing(
    database_url: str, tmp_path: Path, crash: str | None
) -> None:
    """#15.2: the cancel arrives while the pivot (ship) runs. Once the pivot completed nothing
    may be undone: the saga ends CANCELLED with book and ship in place. Killed before the
    pivot's checkpoint, the recovery runs the pivot again (same key) and ends the same way."""
    ledger = Ledger(tmp_path / "ledger.db")
    if crash is None:
        result = run_worker(database_url, tmp_path / "ledger.db", "pivot-cancel")
        assert result.returncode == 0, result.stderr
    else:
        result = await crash_then_recover(
            database_url, tmp_path / "ledger.db", "pivot-cancel", crash, WorkflowStatus.COMPENSATING
        )
    assert "status CANCELLED" in result.stdout, (result.stdout, result.stderr)
    info, steps = await stored(database_url)
    assert info.status is CANCELLED
    assert [s.name for s in steps] == ["book", "ship"]
    again = {f"{W}:2"} if crash else set()
    check(ledger.snapshot(), steps, forward={f"{W}:1", f"{W}:2"}, undone=[], reexecuted=again)


@pytest.mark.parametrize("scenario", ["retry-cancel", "backoff-cancel"])
async def test_a_cancel_with_rollback_between_retries_lets_the_step_finish_and_undoes_it(
    database_url: str, tmp_path: Path, scenario: str
) -> None:
    """#15.3 (retries): charge's first attempt applied its effect, then failed (a timeout);
    the cancel with rollback arrives before the retry: before its backoff began, or during
    it (the backoff is not cut short). The retry runs (same key: applied once), the step is
    recorded, and then refunded."""
    ledger = Ledger(tmp_path / "ledger.db")
    result = run_worker(database_url, tmp_path / "ledger.db", scenario)
    assert result.returncode == 0, result.stderr
    assert "status COMPENSATED" in result.stdout, (result.stdout, result.stderr)
    info, steps = await stored(database_url)
    assert info.status is COMPENSATED
    undone = [f"{W}:2", f"{W}:1"]
    check(ledger.snapshot(), steps, forward=set(undone), undone=undone, reexecuted={f"{W}:2"})
