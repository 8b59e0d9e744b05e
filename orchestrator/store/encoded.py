"""EncodedStore: a Store whose stored values pass through a PayloadCodec on the way in and out.

The app wraps its store in one only when a codec is configured (``Orchestrator(codec=...)``):
without one the engine talks to the plain store and no value takes an extra step. Every value
the engine stores crosses the Store protocol as JSON text, so encoding here covers all of them
at once: workflow inputs, outputs and errors, step outputs, errors and compensation inputs,
messages, events and stream items. Names, statuses, timings, attributes, schedules and the
audit are not payloads and stay as they are (readable, filterable).

A value that cannot be decoded (its key is gone) is read as the codec's UNDECODABLE marker
text, never an exception: listings and pages keep working, and the engine's decoders refuse the
marker with PayloadUndecodableError where a run needs the value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from orchestrator.codec import UNDECODABLE, CodecContext, PayloadCodec
from orchestrator.errors import PayloadUndecodableError
from orchestrator.store.base import (
    DequeueRequest,
    DequeueResult,
    KeyedDelivery,
    KeyedMessage,
    NewWorkflow,
    StepRecord,
    Store,
    StreamEntry,
    WorkflowQuery,
    WorkflowRecord,
)
from orchestrator.types import WorkflowStatus


class EncodedStore:
    """``store`` with ``codec`` applied to every payload; everything else passes through."""

    def __init__(self, store: Store, codec: PayloadCodec) -> None:
        self.inner = store
        self.codec = codec
        self.dialect = store.dialect

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    # -- the codec, both ways -----------------------------------------------------------------
    def _encode(self, text: str | None, workflow_id: str | None, kind: str) -> str | None:
        if text is None:
            return None
        return self.codec.encode(text, CodecContext(workflow_id, kind))

    def _decode(self, text: str | None, workflow_id: str | None, kind: str) -> str | None:
        if text is None:
            return None
        try:
            return self.codec.decode(text, CodecContext(workflow_id, kind))
        except PayloadUndecodableError as exc:
            return UNDECODABLE + exc.message

    def _new(self, new: NewWorkflow) -> NewWorkflow:
        return dataclasses.replace(
            new, input=self._encode(new.input, new.workflow_id, "input") or ""
        )

    def _workflow(self, record: WorkflowRecord) -> WorkflowRecord:
        wid = record.workflow_id
        return dataclasses.replace(
            record,
            input=self._decode(record.input, wid, "input") or "",
            output=self._decode(record.output, wid, "output"),
            error=self._decode(record.error, wid, "error"),
        )

    def _workflow_or_none(self, record: WorkflowRecord | None) -> WorkflowRecord | None:
        return None if record is None else self._workflow(record)

    def _workflows(self, records: list[WorkflowRecord]) -> list[WorkflowRecord]:
        return [self._workflow(r) for r in records]

    def _step_in(self, step: StepRecord) -> StepRecord:
        wid = step.workflow_id
        return dataclasses.replace(
            step,
            output=self._encode(step.output, wid, "step output"),
            error=self._encode(step.error, wid, "error"),
            compensation_input=self._encode(step.compensation_input, wid, "compensation input"),
        )

    def _step_out(self, step: StepRecord) -> StepRecord:
        wid = step.workflow_id
        return dataclasses.replace(
            step,
            output=self._decode(step.output, wid, "step output"),
            error=self._decode(step.error, wid, "error"),
            compensation_input=self._decode(step.compensation_input, wid, "compensation input"),
        )

    # -- workflows ------------------------------------------------------------------------------
    async def create_workflow(self, new: NewWorkflow) -> tuple[WorkflowRecord, bool]:
        record, created = await self.inner.create_workflow(self._new(new))
        return self._workflow(record), created

    async def create_workflow_in(
        self, connection: object, new: NewWorkflow
    ) -> tuple[WorkflowRecord, bool]:
        record, created = await self.inner.create_workflow_in(connection, self._new(new))
        return self._workflow(record), created

    async def claim_workflow(
        self, workflow_id: str, executor_id: str, app_version: str | None
    ) -> WorkflowRecord | None:
        record = await self.inner.claim_workflow(workflow_id, executor_id, app_version)
        return self._workflow_or_none(record)

    async def get_workflow(self, workflow_id: str) -> WorkflowRecord | None:
        return self._workflow_or_none(await self.inner.get_workflow(workflow_id))

    async def list_workflows(self, query: WorkflowQuery) -> list[WorkflowRecord]:
        return self._workflows(await self.inner.list_workflows(query))

    async def list_workflows_keyed(
        self, query: WorkflowQuery
    ) -> list[tuple[WorkflowRecord, tuple[int, int]]]:
        rows = await self.inner.list_workflows_keyed(query)
        return [(self._workflow(record), position) for record, position in rows]

    async def finish_workflow(
        self,
        workflow_id: str,
        status: WorkflowStatus,
        *,
        output: str | None = None,
        error: str | None = None,
        epoch: int | None = None,
    ) -> bool:
        return await self.inner.finish_workflow(
            workflow_id,
            status,
            output=self._encode(output, workflow_id, "output"),
            error=self._encode(error, workflow_id, "error"),
            epoch=epoch,
        )

    async def finish_after_step(self, step: StepRecord, output: str | None) -> bool | None:
        return await self.inner.finish_after_step(
            self._step_in(step), self._encode(output, step.workflow_id, "output")
        )

    async def transition_workflow(
        self,
        workflow_id: str,
        to_status: WorkflowStatus,
        *,
        from_statuses: Collection[WorkflowStatus],
        error: str | None = None,
        epoch: int | None = None,
    ) -> WorkflowRecord | None:
        record = await self.inner.transition_workflow(
            workflow_id,
            to_status,
            from_statuses=from_statuses,
            error=self._encode(error, workflow_id, "error"),
            epoch=epoch,
        )
        return self._workflow_or_none(record)

    async def resume_workflow(
        self,
        workflow_id: str,
        executor_id: str,
        app_version: str | None,
        *,
        from_statuses: Collection[WorkflowStatus],
        to_status: WorkflowStatus = WorkflowStatus.PENDING,
    ) -> WorkflowRecord | None:
        record = await self.inner.resume_workflow(
            workflow_id, executor_id, app_version, from_statuses=from_statuses, to_status=to_status
        )
        return self._workflow_or_none(record)

    async def claim_for_recovery(
        self, executor_id: str, app_version: str | None
    ) -> list[WorkflowRecord]:
        return self._workflows(await self.inner.claim_for_recovery(executor_id, app_version))

    async def take_over(
        self, executor_id: str, app_version: str | None, limit: int
    ) -> list[WorkflowRecord]:
        return self._workflows(await self.inner.take_over(executor_id, app_version, limit))

    async def move_workflows(
        self, workflow_ids: Sequence[str], app_version: str
    ) -> list[WorkflowRecord]:
        return self._workflows(await self.inner.move_workflows(workflow_ids, app_version))

    async def dequeue(self, request: DequeueRequest) -> DequeueResult:
        result = await self.inner.dequeue(request)
        if not result.started:
            return result
        return dataclasses.replace(result, started=self._workflows(result.started))

    # -- steps ------------------------------------------------------------------------------
    async def load_steps(self, workflow_id: str) -> list[StepRecord]:
        return [self._step_out(step) for step in await self.inner.load_steps(workflow_id)]

    async def record_step(self, step: StepRecord) -> WorkflowStatus | None:
        return await self.inner.record_step(self._step_in(step))

    async def start_child(
        self, child: NewWorkflow, step: StepRecord
    ) -> tuple[WorkflowRecord, bool]:
        record, created = await self.inner.start_child(self._new(child), self._step_in(step))
        return self._workflow(record), created

    async def fork_workflow(
        self, new: NewWorkflow, source_workflow_id: str, before_step: int
    ) -> WorkflowRecord:
        record = await self.inner.fork_workflow(self._new(new), source_workflow_id, before_step)
        return self._workflow(record)

    # -- messages, events, streams ----------------------------------------------------------
    async def send_message(
        self,
        destination_id: str,
        topic: str,
        payload: str,
        idempotency_key: str | None,
        step: StepRecord | None = None,
    ) -> bool:
        return await self.inner.send_message(
            destination_id,
            topic,
            self._encode(payload, destination_id, "message") or "",
            idempotency_key,
            None if step is None else self._step_in(step),
        )

    async def send_message_in(
        self,
        connection: object,
        destination_id: str,
        topic: str,
        payload: str,
        idempotency_key: str | None,
    ) -> bool:
        return await self.inner.send_message_in(
            connection,
            destination_id,
            topic,
            self._encode(payload, destination_id, "message") or "",
            idempotency_key,
        )

    async def send_to_key(
        self, message: KeyedMessage, step: StepRecord | None = None
    ) -> KeyedDelivery:
        # Its holder may not exist yet (kept, then moved to a mailbox in SQL): encoded with no
        # workflow in its context.
        encoded = dataclasses.replace(
            message, payload=self._encode(message.payload, None, "message") or ""
        )
        return await self.inner.send_to_key(encoded, None if step is None else self._step_in(step))

    async def recv_message(self, workflow_id: str, topic: str, step: StepRecord) -> str | None:
        # The store copies the stored message into the step's output: already encoded.
        payload = await self.inner.recv_message(workflow_id, topic, self._step_in(step))
        return self._decode(payload, workflow_id, "message")

    async def set_event(
        self, workflow_id: str, key: str, value: str, step: StepRecord | None
    ) -> None:
        await self.inner.set_event(
            workflow_id,
            key,
            self._encode(value, workflow_id, "event") or "",
            None if step is None else self._step_in(step),
        )

    async def get_event(self, workflow_id: str, key: str) -> str | None:
        return self._decode(await self.inner.get_event(workflow_id, key), workflow_id, "event")

    async def get_events(self, workflow_id: str) -> dict[str, str]:
        events = await self.inner.get_events(workflow_id)
        return {
            key: self._decode(value, workflow_id, "event") or "" for key, value in events.items()
        }

    async def set_attributes(
        self, workflow_id: str, attributes: Mapping[str, str], step: StepRecord, *, limit: int
    ) -> None:
        await self.inner.set_attributes(workflow_id, attributes, self._step_in(step), limit=limit)

    async def write_stream(
        self, workflow_id: str, key: str, value: str | None, *, closed: bool, step: StepRecord
    ) -> None:
        await self.inner.write_stream(
            workflow_id,
            key,
            self._encode(value, workflow_id, "stream"),
            closed=closed,
            step=self._step_in(step),
        )

    async def read_stream(
        self, workflow_id: str, key: str, from_position: int
    ) -> list[StreamEntry]:
        entries = await self.inner.read_stream(workflow_id, key, from_position)
        return [
            dataclasses.replace(entry, value=self._decode(entry.value, workflow_id, "stream"))
            for entry in entries
        ]
