"""PostgreSQL's hot-path writes: group-committed step records, new workflows and final
statuses, and the one-round-trip (data-modifying CTE) forms of send, recv and set_event.

A write goes to the GroupCommit, which hands the writes waiting at that moment to ``flush``:
one multi-row statement per kind, or the plain single-row statement (or plan) for a batch of
one. Two hops from the store's method to its SQL."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from orchestrator.errors import (
    InvalidArgumentError,
    WorkflowFinishedError,
    WorkflowNotFoundError,
)
from orchestrator.store import plans
from orchestrator.store.base import NewWorkflow, StepRecord, WorkflowRecord
from orchestrator.store.batching import GroupCommit, Write
from orchestrator.store.plans import Plan, busy, refused, step_params, workflow_from_row
from orchestrator.types import WorkflowStatus

RunPlan = Callable[..., Awaitable[Any]]  # PostgresDriver.run(plan, transaction=...)
Recv = tuple[str, str, StepRecord, "StepRecord | None"]  # workflow, topic, step, otherwise
Rows = Callable[[str, dict[str, Any]], Awaitable[list[dict[str, Any]]]]
Row = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]

T = TypeVar("T")


def split_key(write: Write) -> str | None:
    """Group commit's split key (batching.GroupCommit): the workflow a checkpoint writes.
    Checkpoints of different workflows write different rows, so a batch of them may be
    shared out between the two writers (one workflow's stay in one flush, in order). Not a
    mailbox's sends and receives (first sent, first received) nor starts (of one id, the
    first one wins): None."""
    if write.kind == "record_step":
        return str(write.params.workflow_id)
    if write.kind == "finish_step":
        return str(write.params[0].workflow_id)
    if write.kind == "finish":
        return str(write.params[0])
    return None


class PostgresWrites:
    """The writes PostgresStore runs its own way, on its driver's connections."""

    def __init__(self, run_plan: RunPlan, rows: Rows, row: Row) -> None:
        self._run_plan = run_plan
        self._all = rows
        self._one = row
        self._batcher = GroupCommit(self._flush, split_key=split_key)

    def start(self) -> None:
        self._batcher.start()

    async def stop(self) -> None:
        """Commit what is pending, then stop the writers."""
        await self._batcher.stop()

    @property
    def batcher(self) -> GroupCommit:
        """The group commit (its counters tell how many writes shared a flush)."""
        return self._batcher

    async def _plan(self, plan: Callable[[], Plan[T]], *, transaction: bool = False) -> T:
        result: T = await self._run_plan(plan, transaction=transaction)
        return result

    # -- group commit: the hot-path checkpoints --------------------------------------------

    async def record_step(self, step: StepRecord) -> WorkflowStatus | None:
        """Record a step (see Store.record_step), sharing a commit with concurrent ones."""
        result: WorkflowStatus | None = await self._batcher.submit("record_step", step)
        return result

    async def create_workflow(self, new: NewWorkflow) -> tuple[WorkflowRecord, bool]:
        """Insert a new workflow without attributes (see Store.create_workflow), sharing a
        commit (one with attributes takes its own transaction: PostgresStore.create_workflow)."""
        result: tuple[WorkflowRecord, bool] = await self._batcher.submit("create", new)
        return result

    async def finish_workflow(
        self,
        workflow_id: str,
        status: WorkflowStatus,
        *,
        output: str | None = None,
        error: str | None = None,
        epoch: int | None = None,
    ) -> bool:
        """Write a final status (see Store.finish_workflow), sharing a commit."""
        if not WorkflowStatus(status).is_terminal:
            raise InvalidArgumentError(f"{status} is not a final status")
        finished: bool = await self._batcher.submit(
            "finish", (workflow_id, WorkflowStatus(status).value, output, error, epoch)
        )
        return finished

    async def finish_after_step(
        self, step: StepRecord, output: str | None, recv_topic: str | None = None
    ) -> bool | None:
        """Record the last step and write SUCCESS (see Store.finish_after_step): one statement,
        sharing a commit with concurrent checkpoints."""
        finished: bool | None = await self._batcher.submit(
            "finish_step", (step, output, recv_topic)
        )
        return finished

    async def _flush(self, kind: str, writes: list[Write]) -> list[Any]:
        """One statement for all ``writes`` of a kind; the single-row statement for one (the
        combined statement costs more alone)."""
        params = [write.params for write in writes]
        if len(params) == 1:
            return [await self._write_one(kind, params[0])]
        batched: dict[str, Callable[[list[Any]], Awaitable[list[Any]]]] = {
            "create": self._create_workflows,
            "send": self._send_messages,
            "recv": self._recv_messages,
            "deliver": self._deliver_messages,
            "record_step": self._record_steps,
            "finish": self._finish_workflows,
            "finish_step": self._finish_after_steps,
        }
        return await batched[kind](params)

    async def _write_one(self, kind: str, params: Any) -> Any:
        if kind == "create":
            return await self._create_one(params)
        if kind == "send":
            return await self._send_one(*params)
        if kind == "recv":
            return await self._recv_one(*params)
        if kind == "deliver":
            return await self._deliver_one(*params)
        if kind == "record_step":
            return await self._plan(functools.partial(plans.record_step, params, required=False))
        if kind == "finish_step":
            return await self._finish_after_step_one(*params)
        workflow_id, status, output, error, epoch = params
        finish = functools.partial(
            plans.rowcount_plan,
            "finish_workflow",
            workflow_id=workflow_id,
            status=status,
            output=output,
            error=error,
            epoch=epoch,
        )
        return await self._plan(finish) > 0

    async def _create_one(self, new: NewWorkflow) -> tuple[WorkflowRecord, bool]:
        return await self._plan(functools.partial(plans.insert_workflow, new, conflict=False))

    async def _create_workflows(self, news: list[NewWorkflow]) -> list[Any]:
        rows = await self._all(
            "insert_workflows_batch",
            {
                "workflow_ids": [n.workflow_id for n in news],
                "names": [n.name for n in news],
                "statuses": [n.status.value for n in news],
                "inputs": [n.input for n in news],
                "executor_ids": [n.executor_id for n in news],
                "app_versions": [n.app_version for n in news],
                "queue_names": [n.queue_name for n in news],
                "priorities": [n.priority for n in news],
                "dedup_ids": [n.dedup_id for n in news],
                "partition_keys": [n.partition_key for n in news],
                "parent_workflow_ids": [n.parent_workflow_id for n in news],
                "max_recovery_attempts": [n.max_recovery_attempts for n in news],
                "timeouts_ms": [n.timeout_ms for n in news],
                "delays_ms": [n.delay_ms for n in news],
                "trace_contexts": [n.trace_context for n in news],
            },
        )
        inserted = {row["workflow_id"]: row for row in rows}
        results: list[Any] = []
        for new in news:
            row = inserted.pop(new.workflow_id, None)
            if row is not None and row["name"] == new.name and row["input"] == new.input:
                results.append((workflow_from_row(row), True))
                continue
            if row is not None:  # another write of this batch took the id: answer as it stands
                inserted[new.workflow_id] = row
            # A taken id or dedup id: the single-row path (now committed) gives the answer:
            # (existing row, False), or DuplicateWorkflowError for this write alone.
            try:
                results.append(await self._create_one(new))
            except Exception as error:  # this write's own failure
                results.append(error)
        return results

    async def _record_steps(self, steps: list[StepRecord]) -> list[Any]:
        params = {**step_arrays(steps), "outputs": [s.output for s in steps]}
        rows = await self._all("record_steps_batch", params)
        results: list[Any] = []
        for step, row in zip(steps, rows, strict=True):
            if row["status"] is None:
                results.append(
                    WorkflowNotFoundError(
                        f"the workflow {step.workflow_id!r} does not exist",
                        workflow_id=step.workflow_id,
                    )
                )
            else:
                results.append(WorkflowStatus(row["status"]) if row["inserted"] else None)
        return results

    async def _finish_after_step_one(
        self, step: StepRecord, output: str | None, recv_topic: str | None
    ) -> bool | None:
        params = step_params(step)
        params["step_output"] = params.pop("output")
        params["status"] = WorkflowStatus.SUCCESS.value
        params["output"] = output
        params["recv_topic"] = recv_topic
        rows = await self._all("finish_after_step", params)
        return bool(rows[0]["finished"]) if rows else None

    async def _finish_after_steps(
        self, finishes: list[tuple[StepRecord, str | None, str | None]]
    ) -> list[Any]:
        rows = await self._all("finish_after_steps_batch", finish_after_steps_params(finishes))
        return [bool(row["finished"]) if row["inserted"] else None for row in rows]

    async def _finish_workflows(self, finishes: list[tuple[Any, ...]]) -> list[Any]:
        rows = await self._all("finish_workflows_batch", finish_workflows_params(finishes))
        finished = {row["workflow_id"] for row in rows}
        return [f[0] in finished for f in finishes]

    # -- one-round-trip forms of multi-statement operations ---------------------------------

    async def send_message(
        self,
        destination_id: str,
        topic: str,
        payload: str,
        idempotency_key: str | None,
        step: StepRecord | None = None,
    ) -> bool:
        """Add a message for an active workflow (and record ``step``): one round trip. Sends
        from outside workflows (no step) share a statement with concurrent ones; one without
        a key gets one (plans.retry_key), so a retry after a lost commit answer is a repeat
        of that commit (answered True), not a second message."""
        if step is None:
            generated = idempotency_key is None
            key = plans.retry_key() if generated else idempotency_key
            sent: bool = await self._batcher.submit("send", (destination_id, topic, payload, key))
            return sent or generated
        return await self._send_one(destination_id, topic, payload, idempotency_key, step)

    async def _send_one(
        self,
        destination_id: str,
        topic: str,
        payload: str,
        idempotency_key: str | None,
        step: StepRecord | None = None,
    ) -> bool:
        """One send as one combined statement (check, insert, record the sender's step)."""
        row = await self._one(
            "send_message_combined",
            {
                "destination_id": destination_id,
                "topic": topic,
                "payload": payload,
                "idempotency_key": idempotency_key,
                "workflow_id": None if step is None else step.workflow_id,
                "step_number": None if step is None else step.step_number,
                "name": None if step is None else step.name,
                "kind": None if step is None else step.kind.value,
                "output": None if step is None else step.output,
                "started_at": None if step is None else step.started_at,
                "epoch": None if step is None else step.epoch,
            },
        )
        return _sent(destination_id, row, step)

    async def _send_messages(self, sends: list[tuple[str, str, str, str | None]]) -> list[Any]:
        rows = await self._all(
            "send_messages_batch",
            {
                "destination_ids": [s[0] for s in sends],
                "topics": [s[1] for s in sends],
                "payloads": [s[2] for s in sends],
                "idempotency_keys": [s[3] for s in sends],
            },
        )
        results: list[Any] = []
        claimed: set[tuple[str, str]] = set()
        for (destination_id, _, _, key), row in zip(sends, rows, strict=True):
            inserted = bool(row["inserted"])
            if inserted and key is not None:  # two sends with one key: the first one sent it
                inserted = (destination_id, key) not in claimed
                claimed.add((destination_id, key))
            try:
                results.append(_sent(destination_id, {**row, "inserted": inserted}))
            except Exception as error:  # this send's own answer
                results.append(error)
        return results

    async def deliver_message(
        self, destination_id: str, topic: str, payload: str, step: StepRecord
    ) -> bool:
        """A send to a recv parked in this process (see Store.deliver_message), sharing a
        statement with concurrent ones; its key is generated, as a send's without one."""
        delivered: bool = await self._batcher.submit(
            "deliver", (destination_id, topic, payload, plans.retry_key(), step)
        )
        return delivered

    async def _deliver_one(
        self, destination_id: str, topic: str, payload: str, key: str, step: StepRecord
    ) -> bool:
        row = await self._one(
            "deliver_message_combined",
            {
                "destination_id": destination_id,
                "topic": topic,
                "payload": payload,
                "idempotency_key": key,
                "step_number": step.step_number,
                "name": step.name,
                "kind": step.kind.value,
                "started_at": step.started_at,
                "epoch": step.epoch,
            },
        )
        _sent(destination_id, row)  # not found, finished: this send's error
        return bool(row["delivered"])

    async def _deliver_messages(
        self, deliveries: list[tuple[str, str, str, str, StepRecord]]
    ) -> list[Any]:
        rows = await self._all("deliver_messages_batch", deliver_messages_params(deliveries))
        results: list[Any] = []
        for (destination_id, _, _, _, _), row in zip(deliveries, rows, strict=True):
            try:
                _sent(destination_id, row)  # not found, finished: this send's error
                results.append(bool(row["delivered"]))
            except Exception as error:
                results.append(error)
        return results

    async def recv_message(
        self, workflow_id: str, topic: str, step: StepRecord, otherwise: StepRecord | None = None
    ) -> str | None:
        """Consume the oldest message and record ``step`` with it, both or neither (or, with
        none waiting, record ``otherwise``): one round trip, shared with concurrent receivers."""
        payload: str | None = await self._batcher.submit(
            "recv", (workflow_id, topic, step, otherwise)
        )
        return payload

    async def _recv_one(
        self, workflow_id: str, topic: str, step: StepRecord, otherwise: StepRecord | None
    ) -> str | None:
        row = await self._one(
            "recv_message_combined",
            {
                "workflow_id": workflow_id,
                "topic": topic,
                "step_number": step.step_number,
                "name": step.name,
                "kind": step.kind.value,
                "started_at": step.started_at,
                "epoch": step.epoch,
                "otherwise_name": None if otherwise is None else otherwise.name,
                "otherwise_kind": None if otherwise is None else otherwise.kind.value,
                "otherwise_output": None if otherwise is None else otherwise.output,
                "otherwise_started_at": None if otherwise is None else otherwise.started_at,
            },
        )
        return _received(workflow_id, step, row, otherwise)

    async def _recv_messages(self, recvs: list[Recv]) -> list[Any]:
        # One receiver per (workflow, topic) in a statement: two would see the same message.
        first: dict[tuple[str, str], int] = {}
        for index, (workflow_id, topic, _, _) in enumerate(recvs):
            first.setdefault((workflow_id, topic), index)
        batch = [recvs[i] for i in first.values()]
        otherwise = [r[3] for r in batch]
        rows = await self._all(
            "recv_messages_batch",
            {
                "workflow_ids": [r[0] for r in batch],
                "topics": [r[1] for r in batch],
                "step_numbers": [r[2].step_number for r in batch],
                "names": [r[2].name for r in batch],
                "kinds": [r[2].kind.value for r in batch],
                "started_ats": [r[2].started_at for r in batch],
                "epochs": [r[2].epoch for r in batch],
                "otherwise_names": [None if o is None else o.name for o in otherwise],
                "otherwise_kinds": [None if o is None else o.kind.value for o in otherwise],
                "otherwise_outputs": [None if o is None else o.output for o in otherwise],
                "otherwise_started_ats": [None if o is None else o.started_at for o in otherwise],
            },
        )
        answers = dict(zip(first.values(), rows, strict=True))
        results: list[Any] = []
        for index, recv in enumerate(recvs):
            try:
                row = answers.get(index)
                if row is None:  # a second receiver of the same mailbox: on its own, after
                    results.append(await self._recv_one(*recv))
                else:
                    results.append(_received(recv[0], recv[2], row, recv[3]))
            except Exception as error:  # this receiver's own answer
                results.append(error)
        return results

    async def set_event(self, workflow_id: str, key: str, value: str, step: StepRecord) -> None:
        """Upsert the event and record ``step``: one round trip."""
        row = await self._one(
            "set_event_combined",
            {
                "workflow_id": workflow_id,
                "key": key,
                "value": value,
                "step_number": step.step_number,
                "name": step.name,
                "kind": step.kind.value,
                "output": step.output,
                "started_at": step.started_at,
                "epoch": step.epoch,
            },
        )
        if not row["recorded"]:
            raise refused(step)


def _sent(destination_id: str, row: dict[str, Any], step: StepRecord | None = None) -> bool:
    """A send's answer from its row: sent (True), a redelivery (False), or the error."""
    if row["status"] is None:
        raise WorkflowNotFoundError(
            f"no workflow {destination_id!r} to send a message to", workflow_id=destination_id
        )
    if row["duplicate"] and not row["inserted"]:
        if step is not None and row["refused"]:
            raise refused(step)
        return False  # a redelivery answers as the first delivery did
    status = WorkflowStatus(row["status"])
    if status.is_terminal:
        raise WorkflowFinishedError(
            f"workflow {destination_id!r} has finished ({status}): it will never receive "
            "this message",
            workflow_id=destination_id,
            status=status.value,
        )
    if step is not None and row["refused"]:
        raise refused(step)  # nothing was sent
    return bool(row["inserted"])


def _received(
    workflow_id: str, step: StepRecord, row: dict[str, Any], otherwise: StepRecord | None
) -> str | None:
    """A recv's answer from its row: the payload consumed, None (nothing waiting: and
    ``otherwise`` recorded, when given), the error of a step number already recorded, or busy
    (the oldest message is another transaction's for now); nothing consumed but in the first
    case."""
    if row["busy"]:
        raise busy(workflow_id, step)
    if row["waiting"] is not None and row["payload"] is None:
        raise refused(step)  # nothing was consumed
    if row["waiting"] is None and otherwise is not None and not row["otherwise"]:
        raise refused(otherwise)  # nothing waiting, and its number taken or fenced off
    payload: str | None = row["payload"]
    return payload


# -- the group-commit statements' parameters (also built by bench.statement_costs) ----------


def step_arrays(steps: list[StepRecord]) -> dict[str, list[Any]]:
    """A batch statement's parameters: one array per step field (outputs aside)."""
    return {
        "workflow_ids": [s.workflow_id for s in steps],
        "step_numbers": [s.step_number for s in steps],
        "names": [s.name for s in steps],
        "kinds": [s.kind.value for s in steps],
        "errors": [s.error for s in steps],
        "attempts": [s.attempts for s in steps],
        "child_workflow_ids": [s.child_workflow_id for s in steps],
        "compensations": [s.compensation for s in steps],
        "compensation_inputs": [s.compensation_input for s in steps],
        "compensates_steps": [s.compensates_step for s in steps],
        "started_ats": [s.started_at for s in steps],
        "finished_ats": [s.finished_at for s in steps],
        "epochs": [s.epoch for s in steps],
        "args_hashes": [s.args_hash for s in steps],
    }


def deliver_messages_params(
    deliveries: list[tuple[str, str, str, str, StepRecord]],
) -> dict[str, list[Any]]:
    """deliver_messages_batch's: (destination, topic, payload, key, the recv's step) each."""
    steps = [d[4] for d in deliveries]
    return {
        "destination_ids": [d[0] for d in deliveries],
        "topics": [d[1] for d in deliveries],
        "payloads": [d[2] for d in deliveries],
        "idempotency_keys": [d[3] for d in deliveries],
        "step_numbers": [s.step_number for s in steps],
        "names": [s.name for s in steps],
        "kinds": [s.kind.value for s in steps],
        "started_ats": [s.started_at for s in steps],
        "epochs": [s.epoch for s in steps],
    }


def finish_workflows_params(finishes: list[tuple[Any, ...]]) -> dict[str, list[Any]]:
    """finish_workflows_batch's: (workflow id, status, output, error, epoch) each."""
    return {
        "workflow_ids": [f[0] for f in finishes],
        "statuses": [f[1] for f in finishes],
        "outputs": [f[2] for f in finishes],
        "errors": [f[3] for f in finishes],
        "epochs": [f[4] for f in finishes],
    }


def finish_after_steps_params(
    finishes: list[tuple[StepRecord, str | None, str | None]],
) -> dict[str, Any]:
    """finish_after_steps_batch's: (the last step, the output, a handed recv's topic) each."""
    steps = [step for step, _, _ in finishes]
    return {
        **step_arrays(steps),
        "step_outputs": [s.output for s in steps],
        "status": WorkflowStatus.SUCCESS.value,
        "outputs": [output for _, output, _ in finishes],
        "recv_topics": [topic for _, _, topic in finishes],
    }
