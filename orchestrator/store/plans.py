"""The Store's operations as dialect-neutral plans of named queries.

A plan is a generator: it yields a ``Statement`` (a query name from ``queries.sql`` and its
parameters), receives the ``Result``, and returns the operation's answer. Each store drives the
plans with its own connection (``SQLStore._run`` in operations.py), so the logic lives here once
and PostgreSQL and SQLite only differ in their SQL text, connections and error translation.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Collection, Generator, Mapping
from typing import Any, TypeAlias, TypeVar

from orchestrator.attributes import SUBJECT_ATTRIBUTE
from orchestrator.errors import (
    DuplicateWorkflowError,
    InvalidArgumentError,
    StoreBusyError,
    WorkflowConflictError,
    WorkflowFinishedError,
    WorkflowNotFoundError,
    WorkflowStateError,
)
from orchestrator.store.base import (
    KeyedDelivery,
    KeyedMessage,
    MessageSealer,
    NewWorkflow,
    StepRecord,
    WorkflowRecord,
    WrappedSubjectKey,
)
from orchestrator.types import TERMINAL_STATUSES, StepKind, WorkflowStatus

T = TypeVar("T")
RETRY_KEY_PREFIX = "~retry:"  # the idempotency keys retry_key() gives (none stored before)


@dataclasses.dataclass(frozen=True, slots=True)
class Statement:
    """One query to run: its name in ``queries.sql`` and its named parameters."""

    name: str
    params: Mapping[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class Result:
    """What a statement gave back: its rows as dicts, and how many rows it changed."""

    rows: list[dict[str, Any]]
    rowcount: int

    def one(self) -> dict[str, Any] | None:
        return self.rows[0] if self.rows else None


Plan: TypeAlias = Generator[Statement, Result, T]

_WORKFLOW_FIELDS = tuple(field.name for field in dataclasses.fields(WorkflowRecord))
_NEW_WORKFLOW_FIELDS = tuple(
    field.name for field in dataclasses.fields(NewWorkflow) if field.name != "attributes"
)
_STEP_FIELDS = tuple(field.name for field in dataclasses.fields(StepRecord))
# Columns whose few distinct values recur in every row (interned by workflow_from_row).
_SHARED_TEXT = ("name", "executor_id", "app_version", "queue_name")


# -- rows <-> records -----------------------------------------------------------------------


def workflow_from_row(row: Mapping[str, Any]) -> WorkflowRecord:
    """A ``workflows`` row (extra columns ignored) as a WorkflowRecord."""
    values = {name: row[name] for name in _WORKFLOW_FIELDS}
    values["status"] = WorkflowStatus(values["status"])
    for name in _SHARED_TEXT:  # one copy each, not one per record a running workflow holds
        if values[name] is not None:
            values[name] = sys.intern(values[name])
    return WorkflowRecord(**values)


def step_from_row(row: Mapping[str, Any]) -> StepRecord:
    """A ``steps`` row (extra columns ignored) as a StepRecord."""
    values = {name: row[name] for name in _STEP_FIELDS}
    values["kind"] = StepKind(values["kind"])
    return StepRecord(**values)


def workflow_params(new: NewWorkflow) -> dict[str, Any]:
    params = {name: getattr(new, name) for name in _NEW_WORKFLOW_FIELDS}
    params["status"] = new.status.value
    return params


def step_params(step: StepRecord) -> dict[str, Any]:
    params = {name: getattr(step, name) for name in _STEP_FIELDS}
    params["kind"] = step.kind.value
    return params


def statuses(statuses: Collection[WorkflowStatus] | None) -> list[str] | None:
    return None if statuses is None else [WorkflowStatus(status).value for status in statuses]


# -- plans ----------------------------------------------------------------------------------


def insert_workflow(
    new: NewWorkflow,
    *,
    conflict: bool,
    sealer: MessageSealer | None = None,
    claim: bool = True,
) -> Plan[tuple[WorkflowRecord, bool]]:
    """Insert ``new``; an existing id gives (existing, False), or WorkflowConflictError if
    ``conflict``; a dedup id already active on the queue gives DuplicateWorkflowError. A new
    workflow with attributes claims the messages kept for them (unless not ``claim``: the
    caller claims, with more keys), sealed for it by ``sealer``."""
    inserted = (yield Statement("insert_workflow", workflow_params(new))).one()
    if inserted is not None:
        if new.attributes:  # only then a second statement: the plain start stays one
            params = {"workflow_id": new.workflow_id, "attributes": json.dumps(new.attributes)}
            yield Statement("insert_workflow_attributes", params)
            if claim:
                yield from claim_pending_messages(new.workflow_id, new.attributes, sealer)
        return workflow_from_row(inserted), True
    existing = (yield Statement("get_workflow", {"workflow_id": new.workflow_id})).one()
    if existing is not None:
        if conflict:
            raise WorkflowConflictError(
                f"workflow id {new.workflow_id!r} is already taken; choose another id",
                workflow_id=new.workflow_id,
            )
        return workflow_from_row(existing), False
    holder = (
        yield Statement(
            "get_workflow_by_dedup", {"queue_name": new.queue_name, "dedup_id": new.dedup_id}
        )
    ).one()
    holder_id = None if holder is None else holder["workflow_id"]
    raise DuplicateWorkflowError(
        f"dedup id {new.dedup_id!r} is already active on queue {new.queue_name!r}"
        f" (workflow {holder_id!r}); wait until it finishes or use another dedup id",
        queue_name=new.queue_name,
        dedup_id=new.dedup_id,
        workflow_id=holder_id,
    )


def insert_workflow_in_transaction(
    new: NewWorkflow, sealer: MessageSealer | None = None
) -> Plan[tuple[WorkflowRecord, bool]]:
    """``insert_workflow`` inside a caller's transaction: a PENDING workflow nobody runs yet
    also notifies the workers, which the database delivers only if that transaction commits
    (an ENQUEUED one is notified by its insert trigger)."""
    record, created = yield from insert_workflow(new, conflict=False, sealer=sealer)
    if created and record.status is WorkflowStatus.PENDING and record.executor_id is None:
        yield Statement(
            "notify_unclaimed", {"workflow_id": record.workflow_id, "name": record.name}
        )
    return record, created


def refused(step: StepRecord) -> WorkflowStateError:
    """The error of a step the store would not record (and of everything written with it)."""
    return WorkflowStateError(
        f"step {step.step_number} of workflow {step.workflow_id!r} was not recorded: that step"
        " number is taken, or the workflow has finished or is run by another executor now",
        workflow_id=step.workflow_id,
        step_number=step.step_number,
        refused=True,
    )


def busy(workflow_id: str, step: StepRecord) -> StoreBusyError:
    """The error of a recv whose oldest waiting message another transaction holds for now
    (another executor's recv of the mailbox in flight): nothing taken, look again."""
    return StoreBusyError(
        f"the oldest message waiting for workflow {workflow_id!r} is held by another"
        f" transaction; recv step {step.step_number} took nothing and looks again",
        workflow_id=workflow_id,
        step_number=step.step_number,
    )


def record_step(step: StepRecord, *, required: bool) -> Plan[WorkflowStatus | None]:
    """Insert the step unless its number is taken or it is fenced off; answer the workflow's
    status (None: refused). When ``required``, a refusal raises WorkflowStateError (rolling
    back the whole transaction)."""
    row = (yield Statement("record_step", step_params(step))).one()
    if row is None and required:
        raise refused(step)
    return None if row is None else WorkflowStatus(row["status"])


def finish_after_step(
    step: StepRecord, output: str | None, recv_topic: str | None = None
) -> Plan[bool | None]:
    if recv_topic is not None:  # a recv handed a message in this process: never before an older
        waiting = {"destination_id": step.workflow_id, "topic": recv_topic}
        if (yield Statement("message_waiting", waiting)).one() is not None:
            return None
    if (yield from record_step(step, required=False)) is None:
        return None  # the number was taken: this transaction wrote nothing
    params = {
        "workflow_id": step.workflow_id,
        "status": WorkflowStatus.SUCCESS.value,
        "output": output,
        "epoch": step.epoch,
    }
    return (yield Statement("finish_pending_workflow", params)).rowcount > 0


def get_workflow(workflow_id: str) -> Plan[WorkflowRecord | None]:
    row = (yield Statement("get_workflow", {"workflow_id": workflow_id})).one()
    return None if row is None else workflow_from_row(row)


def start_child(
    child: NewWorkflow, step: StepRecord, sealer: MessageSealer | None = None
) -> Plan[tuple[WorkflowRecord, bool]]:
    answer = yield from insert_workflow(child, conflict=False, sealer=sealer)
    yield from record_step(step, required=True)
    return answer


def fork_workflow(
    new: NewWorkflow, source_id: str, before_step: int, sealer: MessageSealer | None = None
) -> Plan[WorkflowRecord]:
    """Insert ``new`` with the source's steps before ``before_step`` and its attributes. The
    fork is now the newest holder of those keys, so it claims the messages kept for them (as
    a start with them would), once for all its keys, under their lock."""
    if (yield from get_workflow(source_id)) is None:
        raise WorkflowNotFoundError(f"no workflow {source_id!r} to fork", workflow_id=source_id)
    record, _ = yield from insert_workflow(new, conflict=True, claim=False)
    yield Statement(
        "copy_steps",
        {"workflow_id": new.workflow_id, "source_id": source_id, "before_step": before_step},
    )
    ids = {"workflow_id": new.workflow_id, "source_id": source_id}
    yield Statement("copy_workflow_attributes", ids)
    held = yield Statement("get_workflow_attributes", {"workflow_ids": [new.workflow_id]})
    if held.rows:
        keys = {row["name"]: row["value"] for row in held.rows}
        yield from claim_pending_messages(new.workflow_id, keys, sealer)
    return record


def _no_destination(destination_id: str) -> WorkflowNotFoundError:
    return WorkflowNotFoundError(
        f"no workflow {destination_id!r} to send a message to", workflow_id=destination_id
    )


def _finished_destination(destination: WorkflowRecord) -> WorkflowFinishedError:
    return WorkflowFinishedError(
        f"workflow {destination.workflow_id!r} has finished ({destination.status}):"
        " it will never receive this message",
        workflow_id=destination.workflow_id,
        status=destination.status.value,
    )


def send_message(
    destination_id: str,
    topic: str,
    payload: str,
    idempotency_key: str | None,
    step: StepRecord | None,
) -> Plan[bool]:
    destination = yield from get_workflow(destination_id)
    if destination is None:
        raise _no_destination(destination_id)
    if idempotency_key is not None:  # a redelivery answers as the first delivery did
        key = {"destination_id": destination_id, "idempotency_key": idempotency_key}
        if (yield Statement("message_key_used", key)).one() is not None:
            if step is not None:
                yield from record_step(step, required=True)
            return False
    if destination.status.is_terminal:
        raise _finished_destination(destination)
    params = {
        "destination_id": destination_id,
        "topic": topic,
        "payload": payload,
        "idempotency_key": idempotency_key,
    }
    sent = (yield Statement("insert_message", params)).rowcount > 0
    if step is not None:
        yield from record_step(step, required=True)
    return sent


def deliver_message(
    destination_id: str, topic: str, payload: str, idempotency_key: str, step: StepRecord
) -> Plan[bool]:
    """A send to a recv parked in the sender's process (see Store.deliver_message): the
    message consumed with ``step`` recorded, or added for a recv to take. Delivered?"""
    destination = yield from get_workflow(destination_id)
    if destination is None:
        raise _no_destination(destination_id)
    key = {"destination_id": destination_id, "idempotency_key": idempotency_key}
    if (yield Statement("message_key_used", key)).one() is not None:
        return False  # a retry of a send whose commit answer was lost: it went in then
    if destination.status.is_terminal:
        raise _finished_destination(destination)
    params = {**key, "topic": topic, "payload": payload}
    delivered = False
    if (yield Statement("message_waiting", params)).one() is None:  # never before an older one
        recorded = dataclasses.replace(step, output=payload)
        delivered = (yield from record_step(recorded, required=False)) is not None
    yield Statement("insert_message_consumed" if delivered else "insert_message", params)
    return delivered


def recv_message(
    workflow_id: str, topic: str, step: StepRecord, otherwise: StepRecord | None = None
) -> Plan[str | None]:
    params = {"workflow_id": workflow_id, "topic": topic}
    row = (yield Statement("consume_message", params)).one()
    if row is None or row["payload"] is None:  # nothing waiting, or (PostgreSQL) held
        if row is not None and row.get("busy"):
            raise busy(workflow_id, step)
        if otherwise is not None:
            yield from record_step(otherwise, required=True)
        return None
    payload: str = row["payload"]
    yield from record_step(dataclasses.replace(step, output=payload), required=True)
    return payload


def set_event(workflow_id: str, key: str, value: str, step: StepRecord | None) -> Plan[None]:
    yield Statement("set_event", {"workflow_id": workflow_id, "key": key, "value": value})
    if step is not None:
        yield from record_step(step, required=True)


def set_attributes(
    workflow_id: str,
    attributes: Mapping[str, str],
    step: StepRecord,
    limit: int,
    sealer: MessageSealer | None = None,
) -> Plan[None]:
    params = {"workflow_id": workflow_id, "attributes": json.dumps(dict(attributes))}
    yield Statement("insert_workflow_attributes", params)
    count = (yield Statement("count_workflow_attributes", {"workflow_id": workflow_id})).one()
    if count is not None and int(count["n"]) > limit:
        raise InvalidArgumentError(
            f"workflow {workflow_id!r} would have {count['n']} attributes; at most {limit}"
        )
    yield from claim_pending_messages(workflow_id, attributes, sealer)
    yield from record_step(step, required=True)


# -- messages by business key ---------------------------------------------------------------


def retry_key() -> str:
    """An idempotency key for a send from outside any workflow that has none: given before
    the first try, it makes the store's retry of a statement whose commit answer was lost (a
    failover) a repeat of that commit, not a second message. Random (128 bits), so two sends
    never share one; a user's key is never replaced."""
    return f"{RETRY_KEY_PREFIX}{os.urandom(16).hex()}"  # (a uuid4 object cost 1.6 % of a send)


def claim_pending_messages(
    workflow_id: str, keys: Mapping[str, str], sealer: MessageSealer | None = None
) -> Plan[None]:
    """Move the unexpired messages kept for any of ``keys`` (attributes the workflow now
    holds) into its mailbox and forget them all (expired ones too), under the keys' lock: a
    kept message goes to one workflow, once, however many starts race. With a ``sealer`` and a
    workflow with a subject, the moved messages are sealed again under the subject's data key,
    in this same transaction (kept, they were sealed for no workflow)."""
    params = {"keys": json.dumps(dict(keys))}
    yield Statement("lock_message_keys", params)
    claimed = yield Statement("claim_pending_messages", {**params, "workflow_id": workflow_id})
    yield Statement("delete_pending_messages", params)
    if sealer is not None and claimed.rows:
        held = yield Statement("get_workflow_attributes", {"workflow_ids": [workflow_id]})
        subject = next((r["value"] for r in held.rows if r["name"] == SUBJECT_ATTRIBUTE), None)
        if subject is None:
            return  # sealed as a send to this workflow would be: nothing to change
        key = yield from subject_key(subject, sealer)
        for row in claimed.rows:
            payload = sealer.reseal(row["payload"], workflow_id, subject, key)
            params = {"message_id": row["message_id"], "payload": payload}
            yield Statement("set_message_payload", params)


def subject_key(subject: str, sealer: MessageSealer) -> Plan[tuple[str, str]]:
    """The subject's data key as stored (key id, wrapped key), created when it has none (it
    never had one, or it was erased: a new key, as any write after an erasure gets)."""
    row = (yield Statement("get_subject_key", {"subject": subject})).one()
    if row is not None:
        return str(row["key_id"]), str(row["wrapped_key"])
    key_id, wrapped = sealer.new_key(subject)
    return (yield from create_subject_key(subject, key_id=key_id, wrapped_key=wrapped))


def send_to_key(
    message: KeyedMessage,
    step: StepRecord | None,
    sealer: MessageSealer | None = None,
    *,
    generated_key: bool = False,
) -> Plan[KeyedDelivery]:
    """Deliver to the newest unfinished workflow holding attribute ``name`` = ``value``, or
    keep the message for ``keep_ms`` until one starts with it (see claim_pending_messages).
    A holder with a subject gets the payload sealed again by ``sealer`` under its subject's
    data key, read (or created) in this transaction. The sender's ``step``, if any, is
    recorded with what happened as its output. ``generated_key``: the idempotency key is the
    store's own (see retry_key), so a repeat is this very send retried after its commit's
    answer was lost: it answers as that commit did (stored, and where)."""
    delivery = yield from _send_to_key(message, sealer, generated_key)
    if step is not None:
        recorded = dataclasses.replace(step, output=delivery.to_json())
        yield from record_step(recorded, required=True)
    return delivery


def _send_to_key(
    message: KeyedMessage, sealer: MessageSealer | None, generated_key: bool
) -> Plan[KeyedDelivery]:
    key = {"name": message.name, "value": message.value}
    yield Statement("lock_message_keys", {"keys": json.dumps({message.name: message.value})})
    if message.idempotency_key is not None:  # a repeat answers without storing anything
        params = {**key, "idempotency_key": message.idempotency_key}
        used = (yield Statement("key_message_used", params)).one()
        if used is not None:
            if generated_key:  # this send's own lost commit: it was delivered
                return KeyedDelivery(used["destination_id"], expires_at=None, stored=True)
            return KeyedDelivery(workflow_id=None, expires_at=None, stored=False)
    final = sorted(status.value for status in TERMINAL_STATUSES)
    holder = (
        yield Statement(
            "key_holder",
            {**key, "final_statuses": final, "subject_attribute": SUBJECT_ATTRIBUTE},
        )
    ).one()
    if holder is not None:
        holder_id: str = holder["workflow_id"]
        payload, subject = message.payload, holder["subject"]
        if sealer is not None and subject is not None:
            key_row = yield from subject_key(subject, sealer)
            payload = sealer.reseal(payload, holder_id, subject, key_row)
        sent = yield from send_message(
            holder_id, message.topic, payload, message.idempotency_key, None
        )
        return KeyedDelivery(workflow_id=holder_id, expires_at=None, stored=sent)
    yield Statement("delete_expired_pending_key", key)
    kept = (
        yield Statement(
            "keep_message",
            {
                **key,
                "topic": message.topic,
                "payload": message.payload,
                "idempotency_key": message.idempotency_key,
                "keep_ms": message.keep_ms,
            },
        )
    ).one()
    if kept is None:  # kept already under this idempotency key
        if generated_key:  # by this send's own lost commit
            mine = {**key, "idempotency_key": str(message.idempotency_key)}
            first = (yield Statement("kept_message_expiry", mine)).rows[0]
            return KeyedDelivery(None, expires_at=int(first["expires_at"]), stored=True)
        return KeyedDelivery(workflow_id=None, expires_at=None, stored=False)
    return KeyedDelivery(workflow_id=None, expires_at=int(kept["expires_at"]), stored=True)


def write_stream(
    workflow_id: str, key: str, value: str | None, closed: bool, step: StepRecord
) -> Plan[None]:
    params = {"workflow_id": workflow_id, "key": key, "value": value, "closed": closed}
    if (yield Statement("append_stream", params)).rowcount == 0:
        raise WorkflowStateError(
            f"stream {key!r} of workflow {workflow_id!r} is closed: nothing more can be written",
            workflow_id=workflow_id,
            key=key,
        )
    yield from record_step(step, required=True)


def create_subject_key(subject: str, *, key_id: str, wrapped_key: str) -> Plan[tuple[str, str]]:
    params = {"subject": subject, "key_id": key_id, "wrapped_key": wrapped_key}
    yield Statement("insert_subject_key", params)
    row = (yield Statement("get_subject_key", {"subject": subject})).rows[0]
    return str(row["key_id"]), str(row["wrapped_key"])


def rewrap_subject_keys(rewraps: list[tuple[WrappedSubjectKey, str]]) -> Plan[int]:
    """Each data key's new wrapping, set only where the row is still the one read (same key
    id, same wrapped form): a concurrent erasure, new key or rewrap wins. Rows are updated in
    subject order, so two rewraps of overlapping pages wait on each other, never deadlock."""
    changed = 0
    for old, new_wrapped in sorted(rewraps, key=lambda rewrap: rewrap[0].subject):
        params = {
            "subject": old.subject,
            "key_id": old.key_id,
            "wrapped_key": old.wrapped_key,
            "new_wrapped_key": new_wrapped,
        }
        changed += (yield Statement("rewrap_subject_key", params)).rowcount
    return changed


def rows_plan(query: str, /, **params: Any) -> Plan[list[dict[str, Any]]]:
    return (yield Statement(query, params)).rows


def rowcount_plan(query: str, /, **params: Any) -> Plan[int]:
    return (yield Statement(query, params)).rowcount


# -- deletion -------------------------------------------------------------------------------

_DELETIONS = (
    "delete_workflow_attributes",
    "delete_workflow_steps",
    "delete_workflow_messages",
    "delete_workflow_events",
    "delete_workflow_streams",
)


def _delete_rows(ids: list[str]) -> Plan[list[str]]:
    """Delete every row of these (locked, finished) workflows; the ids deleted."""
    if not ids:
        return []
    for query in _DELETIONS:
        yield Statement(query, {"workflow_ids": ids})
    deleted = yield Statement("delete_workflow_rows", {"workflow_ids": ids})
    return [row["workflow_id"] for row in deleted.rows]


def delete_workflows(workflow_ids: list[str]) -> Plan[list[str]]:
    """Delete the finished ones of these workflows with their steps, messages, events,
    streams and attributes (one transaction); the ids deleted. Unknown or unfinished ids are left alone."""
    locked = yield Statement("lock_finished_workflows", {"workflow_ids": workflow_ids})
    return (yield from _delete_rows([row["workflow_id"] for row in locked.rows]))


def delete_expired(status: WorkflowStatus, retention_ms: int, limit: int) -> Plan[list[str]]:
    """Delete up to ``limit`` workflows of ``status`` finished more than ``retention_ms`` ago
    (rows a concurrent sweep holds are skipped); the ids deleted."""
    expired = yield Statement(
        "expired_workflows",
        {"status": status.value, "retention_ms": retention_ms, "limit": limit},
    )
    return (yield from _delete_rows([row["workflow_id"] for row in expired.rows]))
