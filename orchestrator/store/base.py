"""The Store protocol: everything the engine asks of a database, and the records it exchanges.

Values cross this boundary as JSON text (the engine serializes); times are epoch milliseconds
from the database clock. Every method is atomic: it commits all of its writes or none.

Fencing: a step is recorded only if its ``epoch`` is the workflow's ``owner_epoch`` and the
workflow has not finished (a database trigger decides, in the insert itself). Methods that take a
``step`` record it as ``record_step`` does; if it is refused (its number taken, or fenced off)
they raise WorkflowStateError and write nothing at all. A caller tells the two refusals apart by
reading the workflow (``explain`` in the engine).
Database errors are translated to ``orchestrator.errors`` inside each store, in one place.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from orchestrator.types import StepKind, WorkflowStatus

# Notification channels (the ``kind`` passed to a NotificationHandler) and their payloads.
NOTIFY_MESSAGE = "message"  # payload: f"{destination_id}\x1f{topic}"
NOTIFY_EVENT = "event"  # payload: f"{workflow_id}\x1f{key}"
NOTIFY_STREAM = "stream"  # payload: f"{workflow_id}\x1f{key}"
NOTIFY_WORKFLOW = "workflow"  # payload: workflow_id (its status changed)
NOTIFY_QUEUE = "queue"  # payload: queue name (enqueued, or a queued workflow changed status)
NOTIFY_SCHEDULES = "schedules"  # payload: "" (schedules were created, changed or deleted)
NOTIFY_RECONNECTED = "reconnected"  # payload: "" (notifications may have been lost: re-check)
# payload: f"{workflow_id}\x1f{name}": started PENDING with no executor inside a caller's
# transaction, now committed; a worker registering ``name`` claims it (claim_workflow).
NOTIFY_UNCLAIMED = "unclaimed"
SEPARATOR = "\x1f"

NotificationHandler = Callable[[str, str], None]


@dataclass(frozen=True, slots=True)
class WorkflowRecord:
    """One row of ``workflows``."""

    workflow_id: str
    name: str
    status: WorkflowStatus
    input: str
    output: str | None
    error: str | None
    executor_id: str | None
    app_version: str | None
    queue_name: str | None
    priority: int
    dedup_id: str | None
    partition_key: str | None
    parent_workflow_id: str | None
    recovery_attempts: int
    max_recovery_attempts: int | None
    timeout_ms: int | None
    deadline_ms: int | None
    not_before_ms: int | None
    trace_context: str | None
    created_at: int
    updated_at: int
    started_at: int | None
    finished_at: int | None
    # The ownership epoch (fencing token): a new one each time an executor takes the workflow
    # to run it. The store refuses a run's writes made with an older epoch (migration 0004).
    owner_epoch: int = 0
    # Set when a rollback begins: its compensations take the step numbers after this one.
    rollback_after_step: int | None = None


@dataclass(frozen=True, slots=True)
class NewWorkflow:
    """What ``create_workflow`` inserts. The store fills times; ``deadline_ms`` is derived
    (``now + timeout_ms``) when the workflow is created PENDING with a timeout."""

    workflow_id: str
    name: str
    status: WorkflowStatus  # PENDING (runs now) or ENQUEUED (waits for a worker)
    input: str
    executor_id: str | None
    app_version: str | None
    queue_name: str | None = None
    priority: int = 0
    dedup_id: str | None = None
    partition_key: str | None = None
    parent_workflow_id: str | None = None
    max_recovery_attempts: int | None = None
    timeout_ms: int | None = None
    delay_ms: int | None = None  # not_before_ms = now + delay_ms
    trace_context: str | None = None
    # Business keys (name -> text), inserted with the row only when there are some, so a start
    # without attributes runs exactly the statement it did before (see 0009_attributes).
    attributes: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One row of ``steps``: a durable call's recorded outcome."""

    workflow_id: str
    step_number: int
    name: str
    kind: StepKind
    output: str | None = None
    error: str | None = None
    attempts: int = 1
    child_workflow_id: str | None = None
    compensation: str | None = None
    compensation_input: str | None = None
    compensates_step: int | None = None
    started_at: int | None = None
    finished_at: int | None = None  # filled by the store when None
    seq: int | None = None  # order of completion, assigned by the store
    # The writing run's ownership epoch: the step is recorded only while that epoch owns the
    # workflow and the workflow has not finished (see WorkflowRecord.owner_epoch).
    epoch: int | None = None
    # A hash of the arguments a step was called with (Orchestrator(check_step_arguments=True)),
    # compared on replay; None: not recorded.
    args_hash: str | None = None


@dataclass(frozen=True, slots=True)
class KeyedMessage:
    """A message addressed to a business key: the attribute ``name`` = ``value`` a workflow
    holds, kept ``keep_ms`` for a workflow yet to start with it."""

    name: str
    value: str
    topic: str
    payload: str  # JSON
    idempotency_key: str | None
    keep_ms: int


@dataclass(frozen=True, slots=True)
class KeyedDelivery:
    """What a send to a business key did: delivered to ``workflow_id`` (the newest unfinished
    workflow holding the key), or kept until ``expires_at`` (epoch ms, database clock) for the
    next workflow to start with it. ``stored`` is False for a repeat of an idempotency key
    (nothing new stored; then neither is known)."""

    workflow_id: str | None
    expires_at: int | None
    stored: bool

    @property
    def delivered(self) -> bool:
        """True when the message went to a workflow's mailbox (not kept for a later one)."""
        return self.workflow_id is not None

    def to_json(self) -> str:
        """As recorded in the sender's step (a workflow's send_to_key replays it)."""
        return json.dumps(
            {"workflow_id": self.workflow_id, "expires_at": self.expires_at, "stored": self.stored}
        )

    @classmethod
    def from_json(cls, text: str | None) -> KeyedDelivery:
        """The delivery a send_to_key step recorded."""
        fields = json.loads(text or "{}")
        return cls(fields.get("workflow_id"), fields.get("expires_at"), bool(fields.get("stored")))


class MessageSealer(Protocol):
    """Seals a message for the workflow that receives it, inside the store's transaction.

    A message sent by business key is encoded before its receiver is known (under the codec's
    key for no workflow: a SubjectCodec's master key). The store finds the receiver in the
    send's transaction (the key's holder), or in the start that claims the kept message, and,
    when that workflow has a subject, asks the sealer to seal the payload again under the
    subject's data key, so that erasing the subject shreds it too. The app gives its store one
    when its codec has per-subject keys (``store/encoded.py``); without one nothing is resealed.
    """

    def new_key(self, subject: str) -> tuple[str, str]:
        """A new data key for ``subject``, to store when it has none: (key id, wrapped key)."""

    def reseal(self, payload: str, workflow_id: str, subject: str, key: tuple[str, str]) -> str:
        """``payload`` (a stored message) sealed under ``subject``'s data key ``key`` (key id,
        wrapped key, as stored) for ``workflow_id``; unchanged when it cannot be read (its
        key is gone: there is nothing to protect)."""


@dataclass(frozen=True, slots=True)
class WrappedSubjectKey:
    """A subject's data key as ``subject_keys`` holds it: wrapped under a master key
    (``<master key id>:<base64>``, see codec.SubjectCodec)."""

    subject: str
    key_id: str
    wrapped_key: str

    @property
    def master_key_id(self) -> str:
        return self.wrapped_key.partition(":")[0]


@dataclass(frozen=True, slots=True)
class StreamEntry:
    """One value of a stream; ``closed`` marks the end (its value is None)."""

    position: int
    value: str | None
    closed: bool


@dataclass(frozen=True, slots=True)
class WorkflowQuery:
    """Filters for ``list_workflows``; None means 'any'. Newest first unless ``ascending``."""

    statuses: Sequence[WorkflowStatus] | None = None
    name: str | None = None
    queue_name: str | None = None
    executor_id: str | None = None
    parent_workflow_id: str | None = None
    created_after_ms: int | None = None
    created_before_ms: int | None = None
    workflow_ids: Sequence[str] | None = None
    app_version: str | None = None
    # Only unfinished workflows (PENDING, COMPENSATING) of versions no live worker serves.
    stranded: bool = False
    # Only workflows whose id starts with this text.
    id_prefix: str | None = None
    # Only workflows having every one of these attributes (name -> value, equality).
    attributes: Mapping[str, str] | None = None
    # Keyset pagination: only workflows after this (created_at, seq) in the list's order
    # (``WorkflowPageCursor`` of the previous page's last row); ``offset`` is then usually 0.
    after: tuple[int, int] | None = None
    limit: int = 100
    offset: int = 0
    ascending: bool = False


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One row of ``audit_log``: an operator action (``detail`` is a JSON object)."""

    id: int
    at_ms: int
    actor: str
    role: str | None
    surface: str
    action: str
    workflow_id: str | None
    reason: str | None
    detail: str | None


@dataclass(frozen=True, slots=True)
class NewAudit:
    """What ``record_audit`` inserts (the store stamps the id and the time)."""

    actor: str
    role: str | None
    surface: str
    action: str
    workflow_id: str | None = None
    reason: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class MigrationState:
    """Which migrations exist in the code and which the database has applied."""

    available: tuple[str, ...]
    applied: tuple[str, ...] = field(default=())

    @property
    def pending(self) -> tuple[str, ...]:
        return tuple(name for name in self.available if name not in self.applied)


@dataclass(frozen=True, slots=True)
class DequeueRequest:
    """What one worker may start from a queue now; None limits mean unlimited."""

    queue_name: str
    executor_id: str
    app_version: str | None
    max_count: int  # this worker's free capacity (its worker_concurrency, minus running)
    concurrency: int | None = None  # across all workers (per partition when partitioned)
    worker_concurrency: int | None = None
    rate_limit: int | None = None  # starts per rate window across all workers
    rate_window_ms: int = 0
    use_priority: bool = False
    partitioned: bool = False


@dataclass(frozen=True, slots=True)
class DequeueResult:
    """Workflows started now (PENDING on the requesting executor), and when to look again
    (epoch ms: a delayed workflow becomes due, or the rate window reopens), if sooner than a
    notification would say."""

    started: list[WorkflowRecord]
    retry_at_ms: int | None = None


@dataclass(frozen=True, slots=True)
class QueueStats:
    queue_name: str
    depth: int  # ENQUEUED
    running: int  # PENDING or COMPENSATING
    started_last_minute: int


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    executor_id: str
    app_version: str | None
    host: str | None
    pid: int | None
    started_at: int
    heartbeat_at: int
    lease_expires_at: int
    alive: bool


@dataclass(frozen=True, slots=True)
class VersionRecord:
    """An application version that has run: seen by a worker's launch or on a workflow."""

    app_version: str
    first_seen_ms: int | None
    last_seen_ms: int | None
    live_workers: int
    unfinished: int  # PENDING or COMPENSATING workflows recorded with this version
    total: int


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    """A cron schedule stored in the database (declared by a decorator, or created at run
    time); ``input`` is the JSON arguments of each run after the scheduled time."""

    name: str
    workflow_name: str
    cron: str
    input: str
    paused: bool = False
    catch_up: bool = False
    declared: bool = False
    last_tick_ms: int | None = None
    created_at: int | None = None
    updated_at: int | None = None


class Store(Protocol):
    """A durable store for workflows. Implemented by PostgresStore and SQLiteStore."""

    dialect: str
    # How often a waiter re-reads when it was not notified: None when every process's writes
    # notify every other (PostgreSQL), else seconds (SQLite: other processes cannot notify).
    poll_seconds: float | None

    @property
    def connection_failures(self) -> int:
        """How many statements met a lost connection so far (each may have committed without
        its answer arriving; see Lease.adopt_orphans). Always 0 on SQLite."""

    # -- life cycle -------------------------------------------------------------------------
    async def open(self) -> None:
        """Connect and apply pending migrations (under a lock shared by all processes)."""

    async def close(self) -> None:
        """Stop listening and close every connection."""

    async def migrate(self) -> list[str]:
        """Apply pending migrations under a lock; return the names applied now."""

    async def migration_state(self) -> MigrationState:
        """What is applied and what is available (for readiness checks)."""

    async def now_ms(self) -> int:
        """The database clock, epoch milliseconds."""

    async def listen(self, handler: NotificationHandler) -> None:
        """Deliver notifications (``NOTIFY_*`` kinds) to ``handler`` from now until close().

        PostgreSQL: one LISTEN connection per store, reconnected when it drops, after which
        ``handler(NOTIFY_RECONNECTED, "")`` is called so waiters re-check. SQLite: called in
        process after each commit that would notify.
        """

    # -- workflows --------------------------------------------------------------------------
    async def create_workflow(self, new: NewWorkflow) -> tuple[WorkflowRecord, bool]:
        """Insert ``new`` unless its id exists; return (the row now stored, created?)."""

    async def create_workflow_in(
        self, connection: object, new: NewWorkflow
    ) -> tuple[WorkflowRecord, bool]:
        """``create_workflow`` on the caller's ``connection`` (a psycopg connection to this
        store's database), inside its transaction, never committed here: the row exists once
        the caller commits. A PENDING ``new`` must have no executor: its NOTIFY_UNCLAIMED goes
        out on that commit. Raises ConfigurationError on a store or connection that cannot."""

    async def claim_workflow(
        self, workflow_id: str, executor_id: str, app_version: str | None
    ) -> WorkflowRecord | None:
        """Take a PENDING workflow with no executor (of ``app_version``, if given) to run on
        ``executor_id``, in a new epoch; None if it is gone, taken or of another version."""

    async def get_workflow(self, workflow_id: str) -> WorkflowRecord | None:
        """The workflow's row, or None."""

    async def get_workflows(self, workflow_ids: Sequence[str]) -> list[WorkflowRecord]:
        """The rows of those of ``workflow_ids`` that exist, in any order: one query for many
        waiters (the engine gathers concurrent result waiters' reads into one)."""

    async def list_workflows(self, query: WorkflowQuery) -> list[WorkflowRecord]:
        """Rows matching ``query``, ordered by created_at (then workflow_id)."""

    async def list_workflows_keyed(
        self, query: WorkflowQuery
    ) -> list[tuple[WorkflowRecord, tuple[int, int]]]:
        """Like list_workflows, each row with its keyset position (created_at, seq): the
        last one's is the ``after`` of the next page."""

    async def count_workflows(self, query: WorkflowQuery) -> dict[WorkflowStatus, int]:
        """How many workflows match ``query``'s filters (not its page), per status."""

    async def finish_workflow(
        self,
        workflow_id: str,
        status: WorkflowStatus,
        *,
        output: str | None = None,
        error: str | None = None,
        epoch: int | None = None,
    ) -> bool:
        """Write a final status (and output or error) if the workflow is still running
        (PENDING or COMPENSATING) and, when ``epoch`` is given (a run's own write), still owned
        by that epoch. Returns False, writing nothing, otherwise."""

    async def finish_after_step(
        self, step: StepRecord, output: str | None, *, recv_topic: str | None = None
    ) -> bool | None:
        """Record ``step``, the workflow's last one, and in the same transaction write SUCCESS
        with ``output`` if the workflow is still PENDING in the step's epoch: one commit where
        two would follow each other. None: the step was refused (number taken, or fenced off),
        nothing written. False: the step was recorded but the workflow is no longer PENDING
        (read its status). True: both. ``recv_topic``: ``step`` is a recv that took a message
        handed over in this process (its output), never stored: refused too while any message
        waits unconsumed on that topic (the recv must not pass it), as deliver_message is."""

    async def transition_workflow(
        self,
        workflow_id: str,
        to_status: WorkflowStatus,
        *,
        from_statuses: Collection[WorkflowStatus],
        error: str | None = None,
        epoch: int | None = None,
    ) -> WorkflowRecord | None:
        """Set ``to_status`` (and ``error`` when given) if the current status is one of
        ``from_statuses`` (and, when ``epoch`` is given, that epoch still owns the workflow);
        return the updated row, or None (nothing written)."""

    async def resume_workflow(
        self,
        workflow_id: str,
        executor_id: str,
        app_version: str | None,
        *,
        from_statuses: Collection[WorkflowStatus],
        to_status: WorkflowStatus = WorkflowStatus.PENDING,
    ) -> WorkflowRecord | None:
        """Make the workflow ``to_status`` (PENDING or COMPENSATING) on ``executor_id`` again
        from one of ``from_statuses``: clears output/error/finished_at, resets
        recovery_attempts to 0 and the deadline to ``now + timeout_ms``, starts a new epoch.
        Returns the updated row or None."""

    async def begin_rollback(self, workflow_id: str, after_step: int, epoch: int) -> int | None:
        """A run's rollback begins after step ``after_step``: store that (unless a number is
        stored already) if the workflow is COMPENSATING in ``epoch``. Returns the number in
        effect, or None (fenced off: nothing written)."""

    async def claim_for_recovery(
        self, executor_id: str, app_version: str | None
    ) -> list[WorkflowRecord]:
        """For each PENDING or COMPENSATING workflow of ``executor_id`` (and app_version,
        when not None): increment recovery_attempts, start a new epoch, return the rows."""

    async def claim_orphans(
        self,
        executor_id: str,
        app_version: str | None,
        running: Sequence[str],
        settled_ms: int,
        limit: int,
    ) -> list[WorkflowRecord]:
        """Up to ``limit`` PENDING or COMPENSATING workflows of ``executor_id`` (and
        app_version, when not None) not in ``running`` and not updated for ``settled_ms``:
        start a new epoch for each and return them. They were claimed (dequeued, taken over)
        by a commit whose answer was lost, then the claim was retried and found others."""

    # -- steps ------------------------------------------------------------------------------
    async def load_steps(self, workflow_id: str) -> list[StepRecord]:
        """All recorded steps of a workflow by step_number."""

    async def record_step(self, step: StepRecord) -> WorkflowStatus | None:
        """Insert the step unless its number is taken or it is fenced off (the workflow has
        finished, or ``step.epoch`` is not its owner_epoch). Returns the workflow's status as
        of the insert, so the caller knows whether to go on; None (writing nothing) if it was
        refused. WorkflowNotFoundError if the workflow does not exist."""

    async def delete_steps(self, workflow_id: str, from_step: int) -> int:
        """Delete the steps numbered ``from_step`` and above (resume retries failed steps at the
        end of a history). Returns how many were deleted."""

    async def start_child(
        self, child: NewWorkflow, step: StepRecord
    ) -> tuple[WorkflowRecord, bool]:
        """In one transaction: create the child workflow (as create_workflow) and record the
        parent's step. Returns create_workflow's answer; a refused step raises
        WorkflowStateError and creates nothing."""

    async def fork_workflow(
        self, new: NewWorkflow, source_workflow_id: str, before_step: int
    ) -> WorkflowRecord:
        """In one transaction: create ``new`` and copy the source's steps numbered below
        ``before_step``. Raises WorkflowConflictError if the new id exists."""

    # -- messages, events, streams ----------------------------------------------------------
    async def send_message(
        self,
        destination_id: str,
        topic: str,
        payload: str,
        idempotency_key: str | None,
        step: StepRecord | None = None,
    ) -> bool:
        """Add a message for an active workflow; with ``step``, record the sender's step in
        the same transaction. Returns False if ``idempotency_key`` was already used for that
        destination (no message written; the sender's step is still recorded). Raises
        WorkflowNotFoundError / WorkflowFinishedError, or WorkflowStateError (nothing
        written) if the sender's step is refused. Without ``step`` and key, the store gives
        the send a key of its own before the first try, so retrying it is safe."""

    async def send_message_in(
        self,
        connection: object,
        destination_id: str,
        topic: str,
        payload: str,
        idempotency_key: str | None,
    ) -> bool:
        """``send_message`` (no step) on the caller's ``connection``, inside its transaction:
        delivered (and notified) once the caller commits. See ``create_workflow_in``."""

    async def send_to_key(
        self, message: KeyedMessage, step: StepRecord | None = None
    ) -> KeyedDelivery:
        """In one transaction: add ``message`` for the newest unfinished workflow whose
        attribute ``name`` is ``value``, or keep it ``keep_ms`` until a workflow gets that
        attribute (at its start or by set_attributes), which then receives it in the same
        transaction; with ``step``, record the sender's step too. An ``idempotency_key`` already
        used for the key (kept, or delivered to a holder) stores nothing. Without ``step``
        and key, the store gives the send a key of its own, as send_message does."""

    async def deliver_message(
        self, destination_id: str, topic: str, payload: str, step: StepRecord
    ) -> bool:
        """A send from outside any workflow, without an idempotency key, to a workflow whose
        ``recv`` on ``topic`` waits in this process, ``step`` being the record that recv would
        write: in one transaction, the message is added already consumed and ``step`` recorded
        with it as its output, when no older message waits on the topic and the step can be
        recorded (its number free, its epoch the workflow's owner's, the workflow not
        finished); otherwise the message is added for a recv to take, as send_message does.
        True when delivered (the recv returns ``payload`` without reading: its step is
        written). Raises WorkflowNotFoundError / WorkflowFinishedError as send_message. The
        store gives the send a key of its own before the first try: a retry after a lost
        commit answer adds nothing and answers False (the recv then reads what is recorded)."""

    async def recv_message(
        self, workflow_id: str, topic: str, step: StepRecord, otherwise: StepRecord | None = None
    ) -> str | None:
        """In one transaction: consume the oldest unconsumed message on (workflow_id, topic)
        and record ``step`` with that payload as output. Returns the payload, or None if no
        message was waiting (nothing written but ``otherwise``: a step recorded in that case
        instead, in the same statement where the store can; recv's deadline as it parks).
        Raises StoreBusyError, writing nothing, while another transaction holds that oldest
        message (PostgreSQL: another receiver of the mailbox in flight); the caller looks
        again shortly. Never a newer message first. A refused step (``otherwise`` too) raises
        as record_step's refusal does, writing nothing."""

    async def set_event(
        self, workflow_id: str, key: str, value: str, step: StepRecord | None
    ) -> None:
        """Upsert the event (and record ``step``) in one transaction."""

    async def get_event(self, workflow_id: str, key: str) -> str | None:
        """The event's JSON value, or None if it was never set."""

    async def get_events(self, workflow_id: str) -> dict[str, str]:
        """Every event of the workflow: key -> JSON value."""

    async def set_attributes(
        self, workflow_id: str, attributes: Mapping[str, str], step: StepRecord, *, limit: int
    ) -> None:
        """Set (insert or overwrite) attributes of a running workflow and record ``step``, in
        one transaction; more than ``limit`` attributes in all raises InvalidArgumentError
        (nothing written)."""

    async def workflow_attributes(self, workflow_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """The attributes of these workflows (one query): workflow id -> name -> value;
        workflows without any are absent."""

    async def subject_key(self, subject: str) -> tuple[str, str] | None:
        """A subject's data key as stored, (key id, wrapped key), or None: it has none (never
        had one, or it was erased)."""

    async def create_subject_key(
        self, subject: str, key_id: str, wrapped_key: str
    ) -> tuple[str, str]:
        """Store this data key for ``subject`` unless it has one already; returns the one it
        has now (a concurrent writer's may have won)."""

    async def delete_subject_key(self, subject: str) -> bool:
        """Erase a subject's data key (one statement); False when it had none."""

    async def subject_keys_to_rewrap(
        self, master_key_id: str, after: str, limit: int
    ) -> list[WrappedSubjectKey]:
        """Up to ``limit`` data keys NOT wrapped under master key ``master_key_id``, of the
        subjects after ``after`` in subject order (a keyset page: pass the last one seen;
        ``""`` first). A read: no lock taken."""

    async def rewrap_subject_keys(self, rewraps: Sequence[tuple[WrappedSubjectKey, str]]) -> int:
        """Store each key's new wrapping, (the key as read, its new wrapped form), in one short
        transaction. A row that changed since it was read (erased, given a new key after an
        erasure, rewrapped by another process) is left as it is. Returns how many changed."""

    async def write_stream(
        self, workflow_id: str, key: str, value: str | None, *, closed: bool, step: StepRecord
    ) -> None:
        """Append a value (or the closing row) to a stream and record ``step``, atomically.
        Writing to a closed stream raises WorkflowStateError."""

    async def read_stream(
        self, workflow_id: str, key: str, from_position: int
    ) -> list[StreamEntry]:
        """Stream entries at ``from_position`` and after, in order."""

    # -- queues -----------------------------------------------------------------------------
    async def dequeue(self, request: DequeueRequest) -> DequeueResult:
        """Start (ENQUEUED -> PENDING on the requesting executor) as many due workflows as the
        queue's limits allow; each goes to one caller. A queue with a limit shared by all
        workers (concurrency, rate limit) is dequeued in one transaction serialized per queue
        across all workers; one without claims with ``FOR UPDATE SKIP LOCKED`` alone."""

    async def queue_stats(self, queue_name: str | None) -> list[QueueStats]:
        """Depth, running and recent starts per queue (one queue, or all)."""

    # -- workers ----------------------------------------------------------------------------
    async def register_worker(
        self, executor_id: str, app_version: str | None, lease_ms: int, host: str, pid: int
    ) -> int:
        """Register this executor with a lease of ``lease_ms``; returns its expiry (epoch ms)."""

    async def renew_lease(self, executor_id: str, lease_ms: int) -> int | None:
        """Extend an unexpired lease; None if it had expired (it may have been taken over)."""

    async def release_worker(self, executor_id: str) -> None:
        """Expire this executor's lease now (graceful shutdown: others take over at once)."""

    async def take_over(
        self, executor_id: str, app_version: str | None, limit: int
    ) -> list[WorkflowRecord]:
        """Claim up to ``limit`` unfinished workflows of dead workers (same app version),
        counting a recovery attempt on each; each is claimed by exactly one caller."""

    async def owned_workflows(self, executor_id: str, workflow_ids: Sequence[str]) -> set[str]:
        """Which of ``workflow_ids`` are still running on ``executor_id``."""

    async def list_workers(self) -> list[WorkerRecord]:
        """Registered workers, oldest first."""

    # -- application versions -------------------------------------------------------------
    async def see_version(self, app_version: str) -> None:
        """A worker of ``app_version`` runs: remember the version (first and last seen)."""

    async def list_versions(self) -> list[VersionRecord]:
        """Every version seen, by a worker or on a workflow; most recently seen first."""

    async def stranded_counts(self) -> dict[str | None, int]:
        """Unfinished workflows (PENDING, COMPENSATING) of versions no live worker serves:
        app_version -> count."""

    async def move_workflows(
        self, workflow_ids: Sequence[str], app_version: str
    ) -> list[WorkflowRecord]:
        """Give these unfinished workflows ``app_version``, except those a live worker runs:
        each loses its executor and starts a new epoch, so any live worker of that version
        takes it over. Returns the rows moved."""

    # -- schedules --------------------------------------------------------------------------
    # -- the operator audit (migration 0007) ------------------------------------------------
    async def delete_workflows(self, workflow_ids: Sequence[str]) -> list[str]:
        """Delete the finished ones of these workflows (a final status) with their steps,
        messages addressed to them, events, streams and attributes, all in one transaction; returns the
        ids deleted. Unknown and unfinished ids are skipped; audit_log rows stay."""

    async def delete_expired(
        self, status: WorkflowStatus, retention_ms: int, limit: int
    ) -> list[str]:
        """The retention sweep's batch: delete (as ``delete_workflows``) up to ``limit``
        workflows of the final ``status`` that finished more than ``retention_ms`` ago on the
        database clock, in one transaction; rows a concurrent batch holds are skipped, so two
        workers neither wait on each other nor delete the same rows. Returns the ids deleted."""

    async def record_audit(self, entry: NewAudit) -> AuditRecord:
        """Append one operator action to the audit log."""

    async def list_audit(
        self,
        *,
        workflow_id: str | None = None,
        action: str | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[AuditRecord]:
        """Operator actions, newest first (of one workflow / action; ids below ``before_id``)."""

    async def save_schedule(self, schedule: ScheduleRecord, *, replace: bool) -> ScheduleRecord:
        """Create a schedule; with ``replace`` update an existing one's definition (keeping its
        paused flag and last tick). Without it a taken name raises WorkflowConflictError."""

    async def list_schedules(self) -> list[ScheduleRecord]:
        """Every schedule by name."""

    async def set_schedule_paused(self, name: str, paused: bool) -> ScheduleRecord | None:
        """Pause or resume; None if there is no such schedule."""

    async def delete_schedule(self, name: str) -> bool:
        """Delete a schedule; False if there was none."""

    async def mark_schedule_tick(self, name: str, tick_ms: int) -> None:
        """Remember that the tick at ``tick_ms`` ran (the latest is kept)."""
