"""``explore``: a saga run cleanly, then killed at every durable boundary, then failed at every
step, with its guarantees checked in each scenario.

    report = await explore(app, checkout, order, ledger=ledger, messages={"payment": paid})
    report.assert_ok()

Scenarios, each a new workflow on the same database:

- **clean**: the saga as written (its durable calls are the boundaries below);
- **crash before #n** and **crash after #n**: the process dies as SIGKILL leaves it, before
  durable call *n* executes, or after a step's work succeeded but before its record was
  written (the effect happened; the checkpoint did not). Every run of the application stops
  where it stands and writes nothing more; the application is then shut down and launched
  again with the same executor id, which recovers the saga from its records;
- **fail #n**: step *n* fails (as after its last retry), and the saga rolls back;
- **fail #n, crash before/after #m**: the rollback that failure starts dies at compensation
  *m*, and is recovered.

In each, the saga must end; its compensations must run in reverse order of completion, only for
steps that completed, once each, never after its pivot, and a rolled-back saga must undo every
step that has a compensation; a crash must not change how the clean run ended; and where fakes
record their effects in a ``Ledger`` (keyed by the step's idempotency key), every effect must be
applied once, under the key of a step that is recorded (so it is undone if the saga rolls back).

The application runs in this process and event loop (no real process is killed: the run's
task is cancelled at the boundary, which writes nothing, and the in-memory state goes with
the shutdown). With ``time_skipping_app`` the saga's sleeps and timeouts take no time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections import Counter
from collections.abc import Mapping
from typing import Any

from orchestrator.app import Orchestrator
from orchestrator.engine.run import Call, RunProbe, WorkflowRun
from orchestrator.engine.workflows import WorkflowFunction
from orchestrator.errors import NonRetryableError, OrchestratorError
from orchestrator.testing.ledger import Ledger
from orchestrator.testing.timeskip import ActivityProbe, TimeSkippingClock, skip_time
from orchestrator.types import StepKind, WorkflowStatus
from orchestrator.views import StepInfo, WorkflowInfo

# Calls whose work has an effect outside the workflow: a crash after it is worth a scenario.
EFFECTFUL = frozenset(
    {StepKind.STEP, StepKind.COMPENSATION, StepKind.SEND, StepKind.SET_EVENT, StepKind.CHILD}
)
DONE = frozenset(s for s in WorkflowStatus if s.is_terminal)


class ForcedFailure(NonRetryableError):
    """The failure ``explore`` forces on a step (not retried: as after its last attempt)."""

    code = "forced_failure"


@dataclasses.dataclass(frozen=True, slots=True)
class Boundary:
    """A durable call of the saga: its step number, kind and name."""

    number: int
    kind: StepKind
    name: str

    def __str__(self) -> str:
        return f"#{self.number} {self.kind.value} {self.name}"


@dataclasses.dataclass(frozen=True, slots=True)
class Scenario:
    """One run of the saga: what was done to it, and how it ended."""

    name: str
    workflow_id: str
    status: WorkflowStatus | None  # None: it did not end in time
    outcome: str  # its result or error, in short
    crashed: bool  # the simulated crash happened (a boundary not reached leaves it unused)


@dataclasses.dataclass(frozen=True, slots=True)
class Violation:
    """A guarantee that did not hold: in which scenario, which one, and what happened."""

    scenario: str
    invariant: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.scenario}] {self.invariant}: {self.detail}"


@dataclasses.dataclass(frozen=True, slots=True)
class CompensationCoverage:
    """Which compensations the scenarios ran, which were never run, and which completed
    steps (before any pivot) have no compensation at all."""

    exercised: list[str]
    never_exercised: list[str]
    steps_without_compensation: list[str]


@dataclasses.dataclass(frozen=True, slots=True)
class ExplorationReport:
    """What ``explore`` ran and found."""

    workflow: str
    scenarios: list[Scenario]
    violations: list[Violation]
    compensation_coverage: CompensationCoverage

    @property
    def ok(self) -> bool:
        return not self.violations

    def summary(self) -> str:
        """A readable account: the scenarios by outcome, the violations, the coverage."""
        outcomes = Counter(
            "did not end" if s.status is None else s.status.value for s in self.scenarios
        )
        coverage = self.compensation_coverage
        lines = [
            f"explored {self.workflow}: {len(self.scenarios)} scenarios ("
            + ", ".join(f"{n} {status}" for status, n in sorted(outcomes.items()))
            + f"), {len(self.violations)} violations",
        ]
        lines += [f"  {violation}" for violation in self.violations]
        lines.append("  compensations exercised: " + (", ".join(coverage.exercised) or "none"))
        if coverage.never_exercised:
            lines.append("  compensations never exercised: " + ", ".join(coverage.never_exercised))
        if coverage.steps_without_compensation:
            lines.append(
                "  completed steps without a compensation: "
                + ", ".join(coverage.steps_without_compensation)
            )
        return "\n".join(lines)

    def assert_ok(self) -> None:
        """Raise AssertionError with the summary unless every guarantee held."""
        if self.violations:
            raise AssertionError(self.summary())

    def __str__(self) -> str:
        return self.summary()


class _Plan:
    """The fault of one scenario (a RunProbe): it records the target's durable calls, fails
    one step, or kills the process at one boundary (once)."""

    def __init__(
        self,
        workflow_id: str,
        *,
        crash: tuple[int, str] | None = None,
        fail: int | None = None,
    ) -> None:
        self.workflow_id = workflow_id
        self.crash = crash  # (step number, "before" | "after")
        self.fail = fail
        self.calls: list[Boundary] = []
        self.crashed = asyncio.Event()

    def enter(self, run: WorkflowRun, number: int, spec: Call[Any]) -> Call[Any]:
        if run.workflow_id != self.workflow_id:
            return spec
        self.calls.append(Boundary(number, spec.kind, spec.name))
        if self.crash == (number, "before"):
            self._die()
        if self.fail == number and spec.kind is StepKind.STEP:
            self.fail = None  # once: a recovery after it does not fail it again

            async def fails(_: Any) -> Any:
                raise ForcedFailure(f"explore forced step #{number} ({spec.name}) to fail")

            return spec.replaced(perform=fails, retry=None)
        return spec

    def performed(self, run: WorkflowRun, number: int, spec: Call[Any]) -> None:
        if run.workflow_id == self.workflow_id and self.crash == (number, "after"):
            self._die()

    def exit(self, run: WorkflowRun, number: int, spec: Call[Any]) -> None:
        return None

    def backoff(self, run: WorkflowRun, waiting: bool) -> None:
        return None

    def busy(self, run: WorkflowRun, busy: bool) -> None:
        return None

    def _die(self) -> None:
        self.crash = None
        self.crashed.set()
        raise asyncio.CancelledError  # the run stops here and writes nothing more


class _Explorer:
    def __init__(
        self,
        app: Orchestrator,
        workflow: WorkflowFunction[Any, Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        ledger: Ledger | None,
        messages: Mapping[str, Any],
        timeout: float,
    ) -> None:
        self.app = app
        self.workflow = workflow
        self.args = args
        self.kwargs = kwargs
        self.ledger = ledger
        self.messages = messages
        self.timeout = timeout
        self.base = f"explore-{workflow.name}-{uuid.uuid4().hex[:6]}"
        self.count = 0
        self.scenarios: list[Scenario] = []
        self.violations: list[Violation] = []
        self.exercised: set[str] = set()
        self.clean_status: WorkflowStatus | None = None

    # -- one scenario --------------------------------------------------------------------------
    def _install(self, plan: _Plan | None) -> None:
        state = self.app.engine.state
        if isinstance(state.probe, ActivityProbe):
            state.probe.inner = plan
        else:
            state.probe = plan

    async def run(self, name: str, plan_of: Any) -> tuple[_Plan, Scenario]:
        self.count += 1
        workflow_id = f"{self.base}-{self.count}"
        plan: _Plan = plan_of(workflow_id)
        self._install(plan)
        try:
            handle = await self.app.start_with(
                self.workflow, self.args, self.kwargs, _options(workflow_id)
            )
            for topic, value in self.messages.items():
                await self.app.send(
                    workflow_id, value, topic=topic, idempotency_key=f"explore:{topic}"
                )
            ended = asyncio.ensure_future(_quietly(handle.result()))
            crashed = asyncio.ensure_future(plan.crashed.wait())
            await asyncio.wait({ended, crashed}, return_when=asyncio.FIRST_COMPLETED)
            if plan.crashed.is_set():
                ended.cancel()
                await self._restart()
            crashed.cancel()
            status, outcome = await self._outcome(workflow_id)
        finally:
            self._install(None)
        scenario = Scenario(name, workflow_id, status, outcome, plan.crashed.is_set())
        self.scenarios.append(scenario)
        await self._check(scenario)
        return plan, scenario

    async def _restart(self) -> None:
        """The process died: every run stops where it is; then a new launch recovers."""
        tasks = list(self.app.engine.runs.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.app.shutdown(timeout=0)
        await self.app.launch()

    async def _outcome(self, workflow_id: str) -> tuple[WorkflowStatus | None, str]:
        handle = self.app.retrieve(workflow_id)
        try:  # real seconds (the app's clock may be skipping time: its timeouts take none)
            value = await asyncio.wait_for(handle.result(), self.timeout)
            outcome = f"returned {value!r}"[:200]
        except TimeoutError:
            outcome = f"still running after {self.timeout:g} s"
        except OrchestratorError as exc:
            outcome = str(exc)[:200]
        status = (await handle.status()).status
        return (status if status in DONE else None), outcome

    # -- the guarantees ------------------------------------------------------------------------
    def _violation(self, scenario: Scenario, invariant: str, detail: str) -> None:
        self.violations.append(Violation(scenario.name, invariant, detail))

    async def _family(self, workflow_id: str) -> list[str]:
        ids = [workflow_id]
        for parent in ids:
            children = await self.app.list_workflows(parent_workflow_id=parent, limit=1000)
            ids.extend(child.workflow_id for child in children)
        return ids

    async def _check(self, scenario: Scenario) -> None:
        if scenario.status is None:
            self._violation(
                scenario, "the saga ends", f"not ended after {self.timeout:g} s: {scenario.outcome}"
            )
            return
        steps = await self.app.list_steps(scenario.workflow_id)
        info = await self.app.retrieve(scenario.workflow_id).status()
        self._check_compensations(scenario, info, steps)
        if (
            scenario.crashed
            and not scenario.name.startswith("fail")
            and self.clean_status is not None
            and scenario.status is not self.clean_status
        ):
            self._violation(
                scenario,
                "a crash changes nothing",
                f"ended {scenario.status.value}; the clean run ended {self.clean_status.value}",
            )
        if self.ledger is not None:
            family = await self._family(scenario.workflow_id)
            await self._check_ledger(scenario, family)

    def _is_pivot(self, name: str) -> bool:
        step = self.app.registry.steps.get(name)
        return bool(step is not None and step.pivot)

    def _check_compensations(
        self, scenario: Scenario, info: WorkflowInfo, steps: list[StepInfo]
    ) -> None:
        completed = {
            s.step_number: s
            for s in steps
            if s.kind in (StepKind.STEP, StepKind.CHILD) and s.status == "SUCCESS"
        }
        compensations = [
            s for s in steps if s.kind is StepKind.COMPENSATION and s.status == "SUCCESS"
        ]
        compensation_names = {
            s.compensation for s in completed.values() if s.compensation is not None
        }
        for c in compensations:
            self.exercised.add(c.name)
        times = Counter(c.compensates_step for c in compensations)
        for step, n in times.items():
            if n > 1:
                self._violation(
                    scenario, "each compensation runs once", f"step #{step} undone {n} times"
                )
        for c in compensations:
            if c.compensates_step not in completed:
                self._violation(
                    scenario,
                    "only completed steps are compensated",
                    f"{c.name} (#{c.step_number}) undoes step #{c.compensates_step}, which did "
                    "not complete",
                )
        undone = [c.compensates_step for c in compensations if c.compensates_step in completed]
        order = sorted(undone, key=lambda n: _finished(completed[n]), reverse=True)
        if undone != order:
            self._violation(
                scenario,
                "compensations run in reverse order of completion",
                f"undid steps {undone}; in reverse order of completion: {order}",
            )
        pivot = next(
            (s for s in sorted(completed.values(), key=_finished) if self._is_pivot(s.name)), None
        )
        if pivot is not None:
            late = [
                s
                for s in steps
                if s.step_number > pivot.step_number
                and (s.kind is StepKind.COMPENSATION or s.name in compensation_names)
            ]
            for s in late:
                self._violation(
                    scenario,
                    "never compensated past the pivot",
                    f"{s.name} (#{s.step_number}) ran after the pivot {pivot.name} "
                    f"(#{pivot.step_number}) completed",
                )
        if info.status is WorkflowStatus.COMPENSATED:
            skipped = {
                c.compensates_step
                for c in steps
                if c.kind is StepKind.COMPENSATION
                and isinstance(c.output, dict)
                and c.output.get("skipped")
            }
            for number, s in completed.items():
                if s.compensation is not None and number not in undone and number not in skipped:
                    self._violation(
                        scenario,
                        "a rolled-back saga undoes every completed step",
                        f"step #{number} {s.name} completed and was never compensated",
                    )

    async def _check_ledger(self, scenario: Scenario, family: list[str]) -> None:
        assert self.ledger is not None
        recorded: dict[str, set[int]] = {}
        for workflow_id in family:
            steps = await self.app.list_steps(workflow_id)
            recorded[workflow_id] = {
                s.step_number
                for s in steps
                if s.status == "SUCCESS" and s.kind in (StepKind.STEP, StepKind.COMPENSATION)
            }
        prefixes = tuple(f"{workflow_id}:" for workflow_id in family)
        counts = Counter(
            (a.effect, a.key) for a in self.ledger.applications if a.key.startswith(prefixes)
        )
        for (effect, key), n in sorted(counts.items()):
            if n > 1:
                self._violation(
                    scenario,
                    "every effect is applied exactly once",
                    f"{effect!r} applied {n} times under idempotency key {key}",
                )
            workflow_id, _, number = key.rpartition(":")
            if number.isdigit() and int(number) not in recorded.get(workflow_id, set()):
                self._violation(
                    scenario,
                    "idempotency keys are stable",
                    f"{effect!r} was applied under {key}, a step that is not recorded as done: "
                    "the effect is never undone (the step ran again under another key, or "
                    "not at all)",
                )

    # -- all scenarios -----------------------------------------------------------------------
    async def explore(self) -> ExplorationReport:
        plan, clean = await self.run("clean", _Plan)
        self.clean_status = clean.status
        boundaries = list(dict.fromkeys(plan.calls))
        for boundary in boundaries:
            await self.run(
                f"crash before {boundary}",
                lambda wid, b=boundary: _Plan(wid, crash=(b.number, "before")),
            )
            if boundary.kind in EFFECTFUL:
                await self.run(
                    f"crash after {boundary} (done, not recorded)",
                    lambda wid, b=boundary: _Plan(wid, crash=(b.number, "after")),
                )
        for boundary in boundaries:
            if boundary.kind is not StepKind.STEP:
                continue
            failed, _ = await self.run(
                f"fail {boundary}", lambda wid, b=boundary: _Plan(wid, fail=b.number)
            )
            rollback = [c for c in failed.calls if c.kind is StepKind.COMPENSATION]
            for compensation in rollback:
                for phase in ("before", "after"):
                    await self.run(
                        f"fail {boundary}, crash {phase} {compensation}",
                        lambda wid, b=boundary, c=compensation, p=phase: _Plan(
                            wid, fail=b.number, crash=(c.number, p)
                        ),
                    )
        return ExplorationReport(
            workflow=self.workflow.name,
            scenarios=self.scenarios,
            violations=self.violations,
            compensation_coverage=self._coverage(boundaries),
        )

    def _coverage(self, boundaries: list[Boundary]) -> CompensationCoverage:
        registered: list[str] = []
        without: list[str] = []
        for boundary in boundaries:
            if boundary.kind is not StepKind.STEP:
                continue
            if self._is_pivot(boundary.name):
                break  # steps from the pivot on are never rolled back
            step = self.app.registry.steps.get(boundary.name)
            compensation = None if step is None else step.compensation_step
            if compensation is None:
                without.append(str(boundary))
            else:
                registered.append(compensation.name)
        names = list(dict.fromkeys(registered))
        return CompensationCoverage(
            exercised=sorted(self.exercised),
            never_exercised=[n for n in names if n not in self.exercised],
            steps_without_compensation=without,
        )


def _finished(step: StepInfo) -> tuple[float, int]:
    return (step.finished_at.timestamp() if step.finished_at else 0.0, step.step_number)


def _options(workflow_id: str) -> Any:
    from orchestrator.engine.workflows import StartOptions

    return StartOptions(workflow_id=workflow_id)


async def _quietly(awaitable: Any) -> None:
    try:
        await awaitable
    except BaseException:  # the outcome is read from the store afterwards
        return


async def explore(
    app: Orchestrator,
    workflow: WorkflowFunction[Any, Any] | str,
    *args: Any,
    ledger: Ledger | None = None,
    messages: Mapping[str, Any] | None = None,
    timeout: float = 30.0,
    **kwargs: Any,
) -> ExplorationReport:
    """Run ``workflow(*args, **kwargs)`` cleanly, then killed at each durable boundary, then
    with each step failing (and each rollback killed at each compensation), checking the saga
    guarantees in every scenario (see the module docstring).

    Args:
        app: the application with the workflow registered (launched here if it is not; on a
            ``TimeSkippingClock`` its waits take no time).
        ledger: where the saga's fakes record their effects: checked for exactly-once.
        messages: sent to each scenario's workflow right after it starts (topic -> value),
            for a saga that waits for a payment or a webhook.
        timeout: seconds each scenario may take to end.
    """
    function = workflow if isinstance(workflow, WorkflowFunction) else app.workflow_named(workflow)
    owned = not app.launched
    if owned:
        await app.launch()
    explorer = _Explorer(
        app, function, args, kwargs, ledger=ledger, messages=messages or {}, timeout=timeout
    )
    try:
        if isinstance(app.clock, TimeSkippingClock):
            async with skip_time(app):
                return await explorer.explore()
        return await explorer.explore()
    finally:
        if owned:
            await app.shutdown(timeout=0)


__all__ = [
    "Boundary",
    "CompensationCoverage",
    "ExplorationReport",
    "ForcedFailure",
    "RunProbe",
    "Scenario",
    "Violation",
    "explore",
]
