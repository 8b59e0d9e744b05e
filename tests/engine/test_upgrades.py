"""Changing code under running workflows, in one process on both stores: the dry replay's
verdicts (engine/replay.py), app.patched / app.deprecate_patch, stranded workflows (counts,
listing, gauge, versions) and moving workflows to a version (move_workflows, fork). The same
with real worker processes and the CLI: tests/upgrades."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from orchestrator import (
    InvalidArgumentError,
    NonDeterministicWorkflowError,
    NotInWorkflowError,
    Orchestrator,
    ReplayVerdict,
    WorkflowStatus,
)
from tests.conftest import AppFactory
from tests.upgrades.inprocess import ORDER, park, shop


async def check(app: Orchestrator, **kwargs: Any) -> ReplayVerdict:
    verdicts = await app.upgrade_check(**kwargs)
    assert len(verdicts) == 1, verdicts
    return verdicts[0]


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        ("plain", ("compatible", None, None, None)),
        ("patched", ("compatible", None, None, None)),
        ("fraud", ("needs_patch", 2, "recv.deadline", "fraud_check")),
        ("sleepy", ("needs_patch", 2, "recv.deadline", "sleep")),
        ("deprecated", ("needs_patch", 2, "recv.deadline", "fraud_check")),
        ("short", ("needs_patch", 2, "recv.deadline", None)),
    ],
)
async def test_the_upgrade_check_replays_the_history_against_new_code(
    make_app: AppFactory, variant: str, expected: tuple[str, int | None, str | None, str | None]
) -> None:
    verdict = expected[0]
    v1 = shop(make_app, "v1", "plain", "w1")
    await park(v1)
    v2 = shop(make_app, "v2", variant, "w2")
    found = await check(v2)  # not launched: the check opens the database itself
    assert (found.workflow_id, found.workflow_name, found.app_version) == (ORDER, "checkout", "v1")
    assert (found.verdict, found.step, found.recorded, found.called) == expected, found.reason
    assert found.adopted is False
    assert v2.effects == []  # type: ignore[attr-defined]  # nothing executed
    shown = found.as_dict()
    assert shown["verdict"] == verdict
    assert ("step" in shown) == (verdict == "needs_patch")


async def test_an_unregistered_workflow_and_a_finished_history(make_app: AppFactory) -> None:
    v1 = shop(make_app, "v1", "plain", "w1")
    await park(v1)
    other = make_app(app_version="other", executor_id="w9")

    @other.workflow(name="something-else")
    async def something_else() -> None:
        return None

    found = await check(other)
    assert found.verdict == "unknown_workflow"
    assert "checkout" in found.reason

    # The payment arrives, v1 finishes: nothing unfinished is left to check.
    v1b = shop(make_app, "v1", "plain", "w1")
    async with v1b:
        await v1b.send(ORDER, True, topic="paid")
        assert await v1b.retrieve(ORDER).result(timeout=10) == f"c-{ORDER}"
    assert await other.upgrade_check() == []


async def test_a_renamed_step_after_the_wait_is_new_territory(make_app: AppFactory) -> None:
    """Only recorded calls are compared: what comes after the last one is not history."""
    await park(shop(make_app, "v1", "plain", "w1"))
    assert (await check(shop(make_app, "v2", "renamed", "w2"))).verdict == "compatible"


async def test_patched_keeps_old_sagas_on_the_old_path_and_new_ones_on_the_new(
    make_app: AppFactory,
) -> None:
    await park(shop(make_app, "v1", "plain", "w1"))
    v2 = shop(make_app, "v2", "patched", "w2")
    adopted = await check(v2, adopt=True)
    assert adopted.compatible and adopted.adopted
    async with v2:
        assert await v2.stranded() == {}
        await v2.send(ORDER, True, topic="paid")
        assert await v2.retrieve(ORDER).result(timeout=10) == f"c-{ORDER}"
        new = await v2.start("checkout", "o-2", workflow_id="o-2")
        await v2.send("o-2", True, topic="paid")
        assert await new.result(timeout=10) == "c-o-2"
        old_steps = [(s.step_number, s.name, s.kind) for s in await v2.list_steps(ORDER)]
        new_steps = [s.name for s in await v2.list_steps("o-2")]
        info = await v2.retrieve(ORDER).status()
    assert info.app_version == "v2" and info.status is WorkflowStatus.SUCCESS
    assert [name for _, name, _ in old_steps] == ["reserve", "recv.deadline", "recv", "charge"]
    assert new_steps[:3] == ["reserve", "patch:fraud-check", "fraud_check"]
    assert v2.effects == ["charge:o-1", "reserve:o-2", "fraud:o-2", "charge:o-2"]  # type: ignore[attr-defined]

    # Replays of both histories stay deterministic (patched is False, then True, on replay).
    for order in (ORDER, "o-2"):
        assert (await v2.upgrade_check(workflow_ids=[order])) == []  # finished: not checked


async def test_deprecate_patch_consumes_the_marker_and_records_nothing(
    make_app: AppFactory,
) -> None:
    await park(shop(make_app, "v2", "patched", "w2"), "o-marked")
    v3 = shop(make_app, "v3", "deprecated", "w3")
    found = await check(v3, adopt=True)
    assert found.compatible and found.adopted, found.reason
    async with v3:
        await v3.send("o-marked", True, topic="paid")
        assert await v3.retrieve("o-marked").result(timeout=10) == "c-o-marked"
        fresh = await v3.start("checkout", "o-3", workflow_id="o-3")
        await v3.send("o-3", True, topic="paid")
        assert await fresh.result(timeout=10) == "c-o-3"
        names = [s.name for s in await v3.list_steps("o-3")]
    assert names[:2] == ["reserve", "fraud_check"]  # no marker recorded any more
    assert "patch:fraud-check" not in names


async def test_patched_outside_a_workflow_or_without_a_name_is_refused(
    make_app: AppFactory,
) -> None:
    app = make_app()
    seen: list[BaseException] = []

    @app.step()
    async def inside_a_step() -> None:
        try:
            await app.patched("x")
        except NotInWorkflowError as error:
            seen.append(error)

    @app.workflow()
    async def unnamed() -> None:
        await inside_a_step()
        await app.patched("")

    with pytest.raises(NotInWorkflowError):
        await app.patched("x")
    with pytest.raises(NotInWorkflowError):
        await app.deprecate_patch("x")
    async with app:
        handle = await app.start(unnamed)
        with pytest.raises(InvalidArgumentError):
            await handle.result(timeout=10)
    assert len(seen) == 1


async def test_stranded_workflows_are_counted_listed_measured_and_moved(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    await park(shop(make_app, "v1", "plain", "w1"))
    await park(shop(make_app, "v1", "plain", "w1"), "o-2")
    v2 = shop(make_app, "v2", "fraud", "w2")
    with caplog.at_level("WARNING", logger="orchestrator.versions"):
        await v2.launch()
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert "2 workflows stranded" in warning and "v1: 2" in warning, warning
    assert "saga workflows list --stranded" in warning
    assert await v2.stranded() == {"v1": 2}
    listed = await v2.list_workflows(stranded=True)
    assert sorted(i.workflow_id for i in listed) == [ORDER, "o-2"]
    assert [i.workflow_id for i in await v2.list_workflows(app_version="v2")] == []
    metrics = (await v2.render_metrics()).decode()
    assert 'orchestrator_workflows_stranded{app_version="v1"} 2.0' in metrics
    versions = {v.app_version: v for v in await v2.list_versions()}
    assert versions["v1"].stranded == 2 and versions["v1"].live_workers == 0
    assert versions["v2"].live_workers == 1 and versions["v2"].first_seen is not None
    assert v2.effects == []  # type: ignore[attr-defined]  # it runs none of them

    # Moved to v2 (an operator's decision): v2 takes them over (here: they diverge, so the
    # replay says so and they end in error rather than running the wrong code).
    with pytest.raises(InvalidArgumentError):
        await v2.move_workflows([ORDER], "")
    assert await v2.move_workflows(["no-such-workflow"], "v2") == []
    moved = await v2.move_workflows([ORDER], "v2")
    assert moved == [ORDER]
    assert await v2.stranded() == {"v1": 1}
    await v2.shutdown(timeout=0)


async def test_a_workflow_a_live_worker_runs_is_not_moved(make_app: AppFactory) -> None:
    v1 = shop(make_app, "v1", "plain", "w1")
    async with v1:
        await v1.start("checkout", ORDER, workflow_id=ORDER)
        assert await v1.move_workflows([ORDER], "v2") == []
        verdicts = await v1.upgrade_check(adopt=True)  # its own version: nothing to adopt
        assert [(v.verdict, v.adopted) for v in verdicts] == [("compatible", False)]
        assert (await v1.retrieve(ORDER).status()).executor_id == "w1"


async def test_fork_onto_another_version_is_run_by_that_versions_worker(
    make_app: AppFactory,
) -> None:
    await park(shop(make_app, "v1", "plain", "w1"))
    v1 = shop(make_app, "v1", "plain", "w1")
    v2 = shop(make_app, "v2", "patched", "w2")
    async with v1, v2:
        with pytest.raises(InvalidArgumentError):
            await v1.fork(ORDER, 2, app_version="")
        # From step 3: reserve and the recorded deadline are reused, so patched() is False there.
        fork = await v1.fork(ORDER, 3, new_workflow_id="o-fork", app_version="v2")
        await v2.send("o-fork", True, topic="paid")
        assert await fork.result(timeout=20) == f"c-{ORDER}"
        info = await v2.retrieve("o-fork").status()
    assert info.app_version == "v2" and info.executor_id == "w2"
    assert v1.effects == []  # type: ignore[attr-defined]
    assert v2.effects == [f"charge:{ORDER}"]  # type: ignore[attr-defined]


def argued(make_app: AppFactory, version: str, suffix: str, *, check: bool) -> Orchestrator:
    app = make_app(app_version=version, executor_id=f"a-{version}", check_step_arguments=check)

    @app.step(name="quote")
    async def quote(order: str) -> str:
        return f"q-{order}"

    @app.workflow(name="argued")
    async def argued_workflow(order: str) -> str:
        price = await quote(order + suffix)
        await app.recv("go", timeout=3600)
        return price

    return app


async def park_argued(app: Orchestrator) -> None:
    await app.launch()
    await app.start("argued", ORDER, workflow_id=ORDER)
    for _ in range(200):
        if any(s.name == "recv.deadline" for s in await app.list_steps(ORDER)):
            break
        await asyncio.sleep(0.02)
    await app.shutdown(timeout=0)


async def test_the_opt_in_argument_check_names_a_step_called_with_other_arguments(
    make_app: AppFactory,
) -> None:
    await park_argued(argued(make_app, "v1", "", check=True))
    same = await check(argued(make_app, "v2", "", check=False))
    assert same.compatible, same.reason
    other = await check(argued(make_app, "v3", "-changed", check=False))
    assert (other.verdict, other.step, other.recorded, other.called) == (
        "needs_patch",
        1,
        "quote",
        "quote",
    )
    assert "other arguments" in other.reason

    # Recovered by that code, the workflow fails instead of going on with other arguments.
    v3 = argued(make_app, "v1", "-changed", check=True)
    async with v3:
        with pytest.raises(NonDeterministicWorkflowError, match="other arguments"):
            await v3.retrieve(ORDER).result(timeout=10)


async def test_without_the_argument_check_only_names_are_compared(make_app: AppFactory) -> None:
    await park_argued(argued(make_app, "v1", "", check=False))
    assert (await check(argued(make_app, "v2", "-changed", check=True))).compatible
