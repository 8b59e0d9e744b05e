"""Property: random saga shapes, failures and simulated crashes always end balanced, both stores.

Each example draws n forward steps (1..6), which of them have a compensation, the forward step
that fails (or none) and a crash point (or none): "after effect, before checkpoint" of a forward
step or of a compensation. The crash is simulated in-process: the step applies its ledger
effect, then waits forever; the test sees the effect in the ledger, shuts the app down with
``timeout=0`` (the workflow task is cancelled, leaving the row PENDING or COMPENSATING as a
crash would), and a NEW Orchestrator with the same executor id and version recovers it.

Hypothesis prints the falsifying shape and how to reproduce it; to replay a run, pass the seed
it printed: ``.venv/bin/pytest tests/engine/test_saga_properties.py --hypothesis-seed=SEED``
(add ``--hypothesis-show-statistics`` for timings, ``-k sqlite`` / ``-k postgres`` for a store).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, event, example, given, note, settings
from hypothesis import strategies as st

from orchestrator import (
    Orchestrator,
    WorkflowFailedError,
    WorkflowFunction,
    WorkflowHandle,
    WorkflowStatus,
)
from orchestrator.store import create_store
from tests.recovery.ledger import Ledger
from tests.recovery.saga_worker import build_saga, check_saga, forward_entry


@dataclass(frozen=True)
class Shape:
    steps: int
    compensable: frozenset[int]
    fail_at: int | None
    crash: str | None  # "after-effect-step-N" or "after-effect-undo-N"

    @property
    def undone(self) -> list[int]:
        """The forward steps a correct run compensates, in rollback order."""
        if self.fail_at is None:
            return []
        return [n for n in range(self.fail_at - 1, 0, -1) if n in self.compensable]


@st.composite
def shapes(draw: st.DrawFn) -> Shape:
    steps = draw(st.integers(1, 6))
    compensable = frozenset(n for n in range(1, steps + 1) if draw(st.integers(0, 2)) > 0)
    fails = draw(st.integers(0, 3)) > 0  # most sagas fail: rollbacks are what is under test
    fail_at = steps - draw(st.integers(0, steps - 1)) if fails else None  # late: more to undo
    completed = range(1, fail_at or steps + 1)
    forward = [f"after-effect-step-{n}" for n in completed]
    undo = [f"after-effect-undo-{n}" for n in completed if fail_at and n in compensable]
    where = draw(st.sampled_from(["nowhere", "forward", "undo"]))
    points = {"nowhere": [], "forward": forward, "undo": undo or forward}[where]
    crash = draw(st.sampled_from(points)) if points else None
    return Shape(steps, compensable, fail_at, crash)


def crash_effect_shown(ledger: Ledger, workflow_id: str, crash: str) -> bool:
    """The ledger holds the effect applied just before the simulated crash."""
    number = crash.rsplit("-", 1)[1]
    applied = ledger.snapshot().applied
    if crash.startswith("after-effect-step-"):
        return forward_entry(f"{workflow_id}:{number}") in applied
    return any(e.startswith("comp:") and e.endswith(f"@{workflow_id}:{number}") for e in applied)


async def stored_status(database_url: str, workflow_id: str) -> WorkflowStatus:
    store = create_store(database_url)
    await store.open()
    try:
        record = await store.get_workflow(workflow_id)
    finally:
        await store.close()
    assert record is not None
    return record.status


def seed_of_this_run(config: pytest.Config) -> object:
    """The seed given with ``--hypothesis-seed``, else the one Hypothesis drew for this test
    (Hypothesis prints it only for flaky failures, so the failing example's notes carry it)."""
    forced = config.getoption("hypothesis_seed", None)
    if forced is not None:
        return forced
    test = test_random_sagas_end_balanced_whatever_crashes
    return getattr(test, "_hypothesis_internal_use_generated_seed", None)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(shape=shapes())
# Always run: a crash inside a mid-rollback compensation, one in a forward step that is later
# compensated, one in a saga that succeeds.
@example(shape=Shape(4, frozenset({1, 2, 3}), 4, "after-effect-undo-2"))
@example(shape=Shape(3, frozenset({1, 3}), 3, "after-effect-step-1"))
@example(shape=Shape(2, frozenset({2}), None, "after-effect-step-2"))
async def test_random_sagas_end_balanced_whatever_crashes(
    database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    pytestconfig: pytest.Config,
    shape: Shape,
) -> None:
    note(f"{shape!r}; reproduce with --hypothesis-seed={seed_of_this_run(pytestconfig)}")
    ledger = Ledger(tmp_path_factory.mktemp("saga-ledger") / "ledger.db")
    workflow_id = f"prop-{uuid.uuid4().hex[:12]}"
    executor_id = f"exec-{workflow_id}"
    never = asyncio.Event()

    async def simulate_crash(point: str) -> None:
        if point == shape.crash:
            await never.wait()  # a process that died here: nothing after the effect happens

    def make_app() -> Orchestrator:
        return Orchestrator("prop", database_url, executor_id=executor_id, app_version="prop")

    def build(app: Orchestrator, *, crashing: bool) -> WorkflowFunction[[], list[str]]:
        return build_saga(
            app,
            ledger,
            steps=shape.steps,
            compensable=shape.compensable,
            fail_at=shape.fail_at,
            hook=simulate_crash if crashing else None,
        )

    apps: list[Orchestrator] = []
    try:
        app = make_app()
        apps.append(app)
        saga = build(app, crashing=True)
        await app.launch()
        handle: WorkflowHandle[list[str]] = await app.start(saga, workflow_id=workflow_id)
        if shape.crash is not None:
            deadline = time.monotonic() + 10
            while not crash_effect_shown(ledger, workflow_id, shape.crash):
                assert time.monotonic() < deadline, f"never reached {shape.crash}"
                await asyncio.sleep(0.005)
            await app.shutdown(timeout=0)  # the "crash": the task is cancelled mid-step
            crashed_in = (
                WorkflowStatus.COMPENSATING if "undo" in shape.crash else WorkflowStatus.PENDING
            )
            assert await stored_status(database_url, workflow_id) is crashed_in
            app = make_app()  # the restarted process: same executor id and version
            apps.append(app)
            build(app, crashing=False)
            await app.launch()  # recovers the interrupted saga
            handle = app.retrieve(workflow_id)
        try:
            outcome: object = await handle.result(timeout=20)
        except Exception as exc:  # the status below says which failure is right
            outcome = exc
        info = await handle.status()
        steps = await app.list_steps(workflow_id)
    finally:
        for each in apps:
            if each.engine.launched:
                await each.shutdown(timeout=0)
    where = "nowhere" if shape.crash is None else shape.crash.split("-")[2]  # step / undo
    event(f"{info.status}, crash in {where}")
    note(f"outcome={outcome!r} status={info.status} steps={[s.name for s in steps]}")

    if shape.fail_at is None:
        assert info.status is WorkflowStatus.SUCCESS
        assert outcome == [f"{workflow_id}:{n}" for n in range(1, shape.steps + 1)]
    elif shape.undone:
        assert info.status is WorkflowStatus.COMPENSATED
        assert isinstance(outcome, WorkflowFailedError) and outcome.status == "COMPENSATED"
    else:
        assert info.status is WorkflowStatus.ERROR
        assert isinstance(outcome, Exception)
    crashes = int(shape.crash is not None)
    assert info.recovery_attempts == crashes
    snapshot = ledger.snapshot()
    check_saga(
        snapshot,
        steps,
        workflow_id,
        forward_steps=shape.steps,
        compensable=shape.compensable,
        fail_at=shape.fail_at,
        crashes=crashes,
    )
    # The one step interrupted after its effect is the only one executed twice.
    twice = sorted(key for key, count in snapshot.attempts.items() if count > 1)
    assert len(twice) == crashes, snapshot.attempts
    if shape.crash is not None:
        assert twice[0].endswith(f"{workflow_id}:{shape.crash.rsplit('-', 1)[1]}"), twice
