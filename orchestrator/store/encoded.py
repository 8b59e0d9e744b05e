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

With a SubjectCodec (per-subject data keys), each call first finds the data key of the
workflows it touches: a workflow's subject (its reserved "subject" attribute) from a small LRU
cache, read on a miss (one query for the workflows of a call), then the subject's key row,
read afresh on every call that needs it (never cached: an erasure in any process is seen by the
next read everywhere) and created, wrapped, on a subject's first write. A read looks keys up
only for values in the subject form; a workflow without a subject needs no query at all.

A message sent by business key is the one value written before its workflow is known: it is
encoded here for no workflow (under the master key), and the SQL store, which finds its holder
(or the workflow claiming it when kept) in its own transaction, seals it again under that
workflow's subject key with a SubjectSealer (``message_sealer``), which the app gives it.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from orchestrator.attributes import SUBJECT_ATTRIBUTE
from orchestrator.codec import (
    SUBJECT_FORM,
    UNDECODABLE,
    CodecContext,
    PayloadCodec,
    SubjectCodec,
    SubjectKey,
    subject_codec,
)
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
    WrappedSubjectKey,
)
from orchestrator.types import WorkflowStatus

SUBJECT_CACHE_SIZE = 10_000  # workflow id -> subject entries (a subject never changes)
Keys = Mapping[str, SubjectKey]  # workflow id -> its subject's data key (absent: no subject)
_NO_KEYS: Keys = {}


class SubjectSealer:
    """The MessageSealer of a codec with per-subject keys: a kept (or just sent) message,
    encoded for no workflow, decoded and encoded again, whole chain included (compressed then
    sealed), with its receiver's subject key in the context."""

    def __init__(self, codec: PayloadCodec, subjects: SubjectCodec) -> None:
        self.codec = codec
        self.subjects = subjects

    def new_key(self, subject: str) -> tuple[str, str]:
        return self.subjects.new_key(subject)

    def reseal(self, payload: str, workflow_id: str, subject: str, key: tuple[str, str]) -> str:
        key_id, wrapped = key
        # An unwrappable key (its master key left the keyring) raises, as any write does.
        found = SubjectKey(subject, key_id, self.subjects.unwrap(subject, key_id, wrapped))
        try:
            text = self.codec.decode(payload, CodecContext(workflow_id, "message"))
        except PayloadUndecodableError:
            return payload  # unreadable already: nothing left to protect
        return self.codec.encode(text, CodecContext(workflow_id, "message", found))


def message_sealer(codec: PayloadCodec | None) -> SubjectSealer | None:
    """The sealer a store needs with ``codec`` (one with a SubjectCodec), else None."""
    subjects = None if codec is None else subject_codec(codec)
    return None if codec is None or subjects is None else SubjectSealer(codec, subjects)


class EncodedStore:
    """``store`` with ``codec`` applied to every payload; everything else passes through."""

    def __init__(self, store: Store, codec: PayloadCodec) -> None:
        self.inner = store
        self.codec = codec
        self.dialect = store.dialect
        self.subjects = subject_codec(codec)  # None: no per-subject keys, no look-ups
        self._subject_of: OrderedDict[str, str | None] = OrderedDict()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    # -- the codec, both ways -----------------------------------------------------------------
    def _context(self, workflow_id: str | None, kind: str, keys: Keys) -> CodecContext:
        found = None if workflow_id is None else keys.get(workflow_id)
        return CodecContext(workflow_id, kind, found)

    def _encode(
        self, text: str | None, workflow_id: str | None, kind: str, keys: Keys = _NO_KEYS
    ) -> str | None:
        if text is None:
            return None
        return self.codec.encode(text, self._context(workflow_id, kind, keys))

    def _decode(
        self, text: str | None, workflow_id: str | None, kind: str, keys: Keys = _NO_KEYS
    ) -> str | None:
        if text is None:
            return None
        try:
            return self.codec.decode(text, self._context(workflow_id, kind, keys))
        except PayloadUndecodableError as exc:
            return UNDECODABLE + exc.message

    # -- subjects and their data keys ------------------------------------------------------
    def _remember(self, workflow_id: str, subject: str | None) -> None:
        self._subject_of[workflow_id] = subject
        self._subject_of.move_to_end(workflow_id)
        if len(self._subject_of) > SUBJECT_CACHE_SIZE:
            self._subject_of.popitem(last=False)

    async def _subjects(self, workflow_ids: Iterable[str]) -> dict[str, str | None]:
        """Each workflow's subject (None: it has none): cached, else one query for all."""
        found: dict[str, str | None] = {}
        missing: list[str] = []
        for wid in workflow_ids:
            if wid in self._subject_of:
                self._subject_of.move_to_end(wid)
                found[wid] = self._subject_of[wid]
            elif wid not in missing:
                missing.append(wid)
        if missing:
            attributes = await self.inner.workflow_attributes(missing)
            for wid in missing:
                found[wid] = attributes.get(wid, {}).get(SUBJECT_ATTRIBUTE)
                self._remember(wid, found[wid])
        return found

    async def _subject_key(self, subject: str, *, create: bool) -> SubjectKey:
        """The subject's data key, read now (created wrapped when ``create`` and it has none)."""
        assert self.subjects is not None
        row = await self.inner.subject_key(subject)
        if row is None and create:
            key_id, wrapped = self.subjects.new_key(subject)
            row = await self.inner.create_subject_key(subject, key_id, wrapped)
        if row is None:
            return SubjectKey(subject, None, None)
        key_id, wrapped = row
        try:
            return SubjectKey(subject, key_id, self.subjects.unwrap(subject, key_id, wrapped))
        except PayloadUndecodableError as exc:
            if create:
                raise
            return SubjectKey(subject, key_id, None, why=exc.message)

    async def _keys(self, subjects: Mapping[str, str | None], *, create: bool) -> Keys:
        keys: dict[str, SubjectKey] = {}
        by_subject: dict[str, SubjectKey] = {}
        for wid, subject in subjects.items():
            if subject is None:
                continue
            if subject not in by_subject:
                by_subject[subject] = await self._subject_key(subject, create=create)
            keys[wid] = by_subject[subject]
        return keys

    async def _writing(self, *workflow_ids: str | None) -> Keys:
        """The data keys to encode these workflows' values with (created if need be)."""
        if self.subjects is None:
            return _NO_KEYS
        subjects = await self._subjects(wid for wid in workflow_ids if wid is not None)
        return await self._keys(subjects, create=True)

    async def _reading(self, values: Iterable[tuple[str, str | None]]) -> Keys:
        """The data keys to decode these (workflow id, stored text) with: looked up only for
        texts in the subject form."""
        if self.subjects is None:
            return _NO_KEYS
        wanted = {wid for wid, text in values if text is not None and text.startswith(SUBJECT_FORM)}
        if not wanted:
            return _NO_KEYS
        return await self._keys(await self._subjects(wanted), create=False)

    async def _new(self, new: NewWorkflow, keys: Keys = _NO_KEYS) -> tuple[NewWorkflow, Keys]:
        """The row to insert, its input encoded, and the keys used (the new workflow's added)."""
        if self.subjects is not None:
            subject = (new.attributes or {}).get(SUBJECT_ATTRIBUTE)
            if subject is not None:
                found = await self._subject_key(subject, create=True)
                keys = {**keys, new.workflow_id: found}
        encoded = self._encode(new.input, new.workflow_id, "input", keys) or ""
        return dataclasses.replace(new, input=encoded), keys

    def _created(self, new: NewWorkflow, created: bool) -> None:
        """Remember a new workflow's subject (an existing one's is read when needed)."""
        if self.subjects is not None:
            if created:
                self._remember(new.workflow_id, (new.attributes or {}).get(SUBJECT_ATTRIBUTE))
            else:
                self._subject_of.pop(new.workflow_id, None)

    def _workflow(self, record: WorkflowRecord, keys: Keys = _NO_KEYS) -> WorkflowRecord:
        wid = record.workflow_id
        return dataclasses.replace(
            record,
            input=self._decode(record.input, wid, "input", keys) or "",
            output=self._decode(record.output, wid, "output", keys),
            error=self._decode(record.error, wid, "error", keys),
        )

    async def _read_workflow(self, record: WorkflowRecord) -> WorkflowRecord:
        keys = await self._reading(_values(record))
        return self._workflow(record, keys)

    async def _workflow_or_none(self, record: WorkflowRecord | None) -> WorkflowRecord | None:
        return None if record is None else await self._read_workflow(record)

    async def _workflows(self, records: list[WorkflowRecord]) -> list[WorkflowRecord]:
        keys = await self._reading(value for r in records for value in _values(r))
        return [self._workflow(r, keys) for r in records]

    def _step_in(self, step: StepRecord, keys: Keys = _NO_KEYS) -> StepRecord:
        wid = step.workflow_id
        return dataclasses.replace(
            step,
            output=self._encode(step.output, wid, "step output", keys),
            error=self._encode(step.error, wid, "error", keys),
            compensation_input=self._encode(
                step.compensation_input, wid, "compensation input", keys
            ),
        )

    def _step_out(self, step: StepRecord, keys: Keys = _NO_KEYS) -> StepRecord:
        wid = step.workflow_id
        return dataclasses.replace(
            step,
            output=self._decode(step.output, wid, "step output", keys),
            error=self._decode(step.error, wid, "error", keys),
            compensation_input=self._decode(
                step.compensation_input, wid, "compensation input", keys
            ),
        )

    # -- workflows ------------------------------------------------------------------------------
    async def create_workflow(self, new: NewWorkflow) -> tuple[WorkflowRecord, bool]:
        encoded, keys = await self._new(new)
        record, created = await self.inner.create_workflow(encoded)
        self._created(new, created)
        return await self._read_workflow(record) if not created else self._workflow(
            record, keys
        ), created

    async def create_workflow_in(
        self, connection: object, new: NewWorkflow
    ) -> tuple[WorkflowRecord, bool]:
        encoded, keys = await self._new(new)
        record, created = await self.inner.create_workflow_in(connection, encoded)
        self._created(new, created)
        return await self._read_workflow(record) if not created else self._workflow(
            record, keys
        ), created

    async def claim_workflow(
        self, workflow_id: str, executor_id: str, app_version: str | None
    ) -> WorkflowRecord | None:
        record = await self.inner.claim_workflow(workflow_id, executor_id, app_version)
        return await self._workflow_or_none(record)

    async def get_workflow(self, workflow_id: str) -> WorkflowRecord | None:
        return await self._workflow_or_none(await self.inner.get_workflow(workflow_id))

    async def get_workflows(self, workflow_ids: Sequence[str]) -> list[WorkflowRecord]:
        return await self._workflows(await self.inner.get_workflows(workflow_ids))

    async def list_workflows(self, query: WorkflowQuery) -> list[WorkflowRecord]:
        return await self._workflows(await self.inner.list_workflows(query))

    async def list_workflows_keyed(
        self, query: WorkflowQuery
    ) -> list[tuple[WorkflowRecord, tuple[int, int]]]:
        rows = await self.inner.list_workflows_keyed(query)
        keys = await self._reading(value for record, _ in rows for value in _values(record))
        return [(self._workflow(record, keys), position) for record, position in rows]

    async def finish_workflow(
        self,
        workflow_id: str,
        status: WorkflowStatus,
        *,
        output: str | None = None,
        error: str | None = None,
        epoch: int | None = None,
    ) -> bool:
        keys = await self._writing(workflow_id)
        return await self.inner.finish_workflow(
            workflow_id,
            status,
            output=self._encode(output, workflow_id, "output", keys),
            error=self._encode(error, workflow_id, "error", keys),
            epoch=epoch,
        )

    async def finish_after_step(
        self, step: StepRecord, output: str | None, *, recv_topic: str | None = None
    ) -> bool | None:
        keys = await self._writing(step.workflow_id)
        return await self.inner.finish_after_step(
            self._step_in(step, keys),
            self._encode(output, step.workflow_id, "output", keys),
            recv_topic=recv_topic,
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
        keys = await self._writing(workflow_id) if error is not None else _NO_KEYS
        record = await self.inner.transition_workflow(
            workflow_id,
            to_status,
            from_statuses=from_statuses,
            error=self._encode(error, workflow_id, "error", keys),
            epoch=epoch,
        )
        return await self._workflow_or_none(record)

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
        return await self._workflow_or_none(record)

    async def claim_for_recovery(
        self, executor_id: str, app_version: str | None
    ) -> list[WorkflowRecord]:
        return await self._workflows(await self.inner.claim_for_recovery(executor_id, app_version))

    async def claim_orphans(
        self,
        executor_id: str,
        app_version: str | None,
        running: Sequence[str],
        settled_ms: int,
        limit: int,
    ) -> list[WorkflowRecord]:
        return await self._workflows(
            await self.inner.claim_orphans(executor_id, app_version, running, settled_ms, limit)
        )

    async def take_over(
        self, executor_id: str, app_version: str | None, limit: int
    ) -> list[WorkflowRecord]:
        return await self._workflows(await self.inner.take_over(executor_id, app_version, limit))

    async def move_workflows(
        self, workflow_ids: Sequence[str], app_version: str
    ) -> list[WorkflowRecord]:
        return await self._workflows(await self.inner.move_workflows(workflow_ids, app_version))

    async def dequeue(self, request: DequeueRequest) -> DequeueResult:
        result = await self.inner.dequeue(request)
        if not result.started:
            return result
        return dataclasses.replace(result, started=await self._workflows(result.started))

    # -- steps ------------------------------------------------------------------------------
    async def load_steps(self, workflow_id: str) -> list[StepRecord]:
        steps = await self.inner.load_steps(workflow_id)
        keys = await self._reading(
            (workflow_id, text)
            for step in steps
            for text in (step.output, step.error, step.compensation_input)
        )
        return [self._step_out(step, keys) for step in steps]

    async def record_step(self, step: StepRecord) -> WorkflowStatus | None:
        keys = await self._writing(step.workflow_id)
        return await self.inner.record_step(self._step_in(step, keys))

    async def start_child(
        self, child: NewWorkflow, step: StepRecord
    ) -> tuple[WorkflowRecord, bool]:
        keys = await self._writing(step.workflow_id)
        parent = keys.get(step.workflow_id)
        if parent is not None and SUBJECT_ATTRIBUTE not in (child.attributes or {}):
            # A child without a subject of its own holds its parent's data.
            inherited = {**(child.attributes or {}), SUBJECT_ATTRIBUTE: parent.subject}
            child = dataclasses.replace(child, attributes=inherited)
        encoded, keys = await self._new(child, keys)
        record, created = await self.inner.start_child(encoded, self._step_in(step, keys))
        self._created(child, created)
        if not created:
            return await self._read_workflow(record), created
        return self._workflow(record, keys), created

    async def fork_workflow(
        self, new: NewWorkflow, source_workflow_id: str, before_step: int
    ) -> WorkflowRecord:
        keys = await self._writing(source_workflow_id)
        source = keys.get(source_workflow_id)
        if source is not None and SUBJECT_ATTRIBUTE not in (new.attributes or {}):
            # The fork copies its source's attributes (its subject with them) and steps.
            new = dataclasses.replace(
                new, attributes={**(new.attributes or {}), SUBJECT_ATTRIBUTE: source.subject}
            )
        encoded, keys = await self._new(new, keys)
        record = await self.inner.fork_workflow(encoded, source_workflow_id, before_step)
        self._created(new, True)
        return self._workflow(record, keys)

    # -- messages, events, streams ----------------------------------------------------------
    async def send_message(
        self,
        destination_id: str,
        topic: str,
        payload: str,
        idempotency_key: str | None,
        step: StepRecord | None = None,
    ) -> bool:
        keys = await self._writing(destination_id, None if step is None else step.workflow_id)
        return await self.inner.send_message(
            destination_id,
            topic,
            self._encode(payload, destination_id, "message", keys) or "",
            idempotency_key,
            None if step is None else self._step_in(step, keys),
        )

    async def send_message_in(
        self,
        connection: object,
        destination_id: str,
        topic: str,
        payload: str,
        idempotency_key: str | None,
    ) -> bool:
        keys = await self._writing(destination_id)
        return await self.inner.send_message_in(
            connection,
            destination_id,
            topic,
            self._encode(payload, destination_id, "message", keys) or "",
            idempotency_key,
        )

    async def send_to_key(
        self, message: KeyedMessage, step: StepRecord | None = None
    ) -> KeyedDelivery:
        # Its holder is found in the store's transaction, or does not exist yet (kept, then
        # moved to a mailbox in SQL): encoded with no workflow in its context (a SubjectCodec
        # uses the keyring's current key); the store's SubjectSealer seals it again for a
        # holder with a subject, in that transaction.
        keys = await self._writing(None if step is None else step.workflow_id)
        encoded = dataclasses.replace(
            message, payload=self._encode(message.payload, None, "message") or ""
        )
        return await self.inner.send_to_key(
            encoded, None if step is None else self._step_in(step, keys)
        )

    async def deliver_message(
        self, destination_id: str, topic: str, payload: str, step: StepRecord
    ) -> bool:
        # The store copies the message into the recv step's output: encoded once, here.
        keys = await self._writing(destination_id)
        return await self.inner.deliver_message(
            destination_id,
            topic,
            self._encode(payload, destination_id, "message", keys) or "",
            self._step_in(step, keys),
        )

    async def recv_message(
        self, workflow_id: str, topic: str, step: StepRecord, otherwise: StepRecord | None = None
    ) -> str | None:
        # The store copies the stored message into the step's output: already encoded.
        keys = await self._writing(workflow_id)
        payload = await self.inner.recv_message(
            workflow_id,
            topic,
            self._step_in(step, keys),
            None if otherwise is None else self._step_in(otherwise, keys),
        )
        return self._decode(payload, workflow_id, "message", keys)

    async def set_event(
        self, workflow_id: str, key: str, value: str, step: StepRecord | None
    ) -> None:
        keys = await self._writing(workflow_id)
        await self.inner.set_event(
            workflow_id,
            key,
            self._encode(value, workflow_id, "event", keys) or "",
            None if step is None else self._step_in(step, keys),
        )

    async def get_event(self, workflow_id: str, key: str) -> str | None:
        value = await self.inner.get_event(workflow_id, key)
        keys = await self._reading([(workflow_id, value)])
        return self._decode(value, workflow_id, "event", keys)

    async def get_events(self, workflow_id: str) -> dict[str, str]:
        events = await self.inner.get_events(workflow_id)
        keys = await self._reading((workflow_id, value) for value in events.values())
        return {
            key: self._decode(value, workflow_id, "event", keys) or ""
            for key, value in events.items()
        }

    async def set_attributes(
        self, workflow_id: str, attributes: Mapping[str, str], step: StepRecord, *, limit: int
    ) -> None:
        keys = await self._writing(workflow_id)
        await self.inner.set_attributes(
            workflow_id, attributes, self._step_in(step, keys), limit=limit
        )

    async def write_stream(
        self, workflow_id: str, key: str, value: str | None, *, closed: bool, step: StepRecord
    ) -> None:
        keys = await self._writing(workflow_id)
        await self.inner.write_stream(
            workflow_id,
            key,
            self._encode(value, workflow_id, "stream", keys),
            closed=closed,
            step=self._step_in(step, keys),
        )

    async def read_stream(
        self, workflow_id: str, key: str, from_position: int
    ) -> list[StreamEntry]:
        entries = await self.inner.read_stream(workflow_id, key, from_position)
        keys = await self._reading((workflow_id, entry.value) for entry in entries)
        return [
            dataclasses.replace(entry, value=self._decode(entry.value, workflow_id, "stream", keys))
            for entry in entries
        ]

    # -- subjects ---------------------------------------------------------------------------
    async def delete_subject_key(self, subject: str) -> bool:
        return await self.inner.delete_subject_key(subject)

    async def subject_keys_to_rewrap(
        self, master_key_id: str, after: str, limit: int
    ) -> list[WrappedSubjectKey]:
        return await self.inner.subject_keys_to_rewrap(master_key_id, after, limit)

    async def rewrap_subject_keys(self, rewraps: Sequence[tuple[WrappedSubjectKey, str]]) -> int:
        return await self.inner.rewrap_subject_keys(rewraps)


def _values(record: WorkflowRecord) -> list[tuple[str, str | None]]:
    wid = record.workflow_id
    return [(wid, record.input), (wid, record.output), (wid, record.error)]
