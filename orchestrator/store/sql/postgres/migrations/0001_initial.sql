-- 0001_initial: the durable-execution data model. Why it exists: everything starts here.
--
-- Data model
-- ----------
--   workflows   one row per workflow execution, keyed by workflow_id (= its idempotency key).
--               Holds the JSON input, the JSON output or error once finished, who runs it
--               (executor_id, app_version), its queue placement and its deadline.
--   steps       one row per durable call a workflow made, keyed by (workflow_id, step_number).
--               A step is recorded exactly once: the row holds its JSON output or error. Forward
--               steps that declared a compensation also hold that compensation's name and input,
--               written in the same commit, so a rollback knows what to undo after any crash.
--               Compensations run as steps too (kind 'compensation', compensates_step = N).
--   messages    send/recv mailboxes: rows addressed to a workflow and topic, consumed at most
--               once by a recv step in the same transaction that records the step.
--   events      the latest value of each (workflow_id, key) published with set_event.
--   streams     append-only values per (workflow_id, key); a row with closed = true ends it.
--
-- All times are epoch milliseconds from the database clock (now_ms()), never a worker's clock.
--
-- Life cycle of a workflow
-- ------------------------
--   start ──► ENQUEUED ──(a worker dequeues)──► PENDING          (started on a queue)
--   start ───────────────────────────────────► PENDING          (started directly)
--   PENDING ──► SUCCESS | ERROR                                  (function returned / raised)
--   PENDING ──► COMPENSATING ──► COMPENSATED | COMPENSATION_FAILED   (a saga rolls back)
--   PENDING | ENQUEUED ──(cancel)──► CANCELLED                   (stops at its next durable call)
--   PENDING ──(crashed more than max_recovery_attempts)──► MAX_RECOVERY_ATTEMPTS_EXCEEDED
--   CANCELLED | ERROR | ... ──(resume)──► PENDING                (re-runs from its last checkpoint)
-- A PENDING workflow whose executor died is resumed by that executor at launch, or taken over
-- by another worker once the dead one's lease expires; replay returns recorded step results.

CREATE FUNCTION now_ms() RETURNS bigint
    LANGUAGE sql VOLATILE
    AS $$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint $$;

CREATE TABLE workflows (
    workflow_id            text PRIMARY KEY,
    name                   text NOT NULL,
    status                 text NOT NULL,
    input                  text NOT NULL,            -- JSON: {"args": [...], "kwargs": {...}}
    output                 text,                     -- JSON, once SUCCESS
    error                  text,                     -- JSON-encoded exception, once failed
    executor_id            text,
    app_version            text,
    queue_name             text,
    priority               integer NOT NULL DEFAULT 0,
    dedup_id               text,
    partition_key          text,
    parent_workflow_id     text,
    recovery_attempts      integer NOT NULL DEFAULT 0,
    max_recovery_attempts  integer,
    timeout_ms             bigint,                   -- relative timeout, for resume/fork
    deadline_ms            bigint,                   -- absolute deadline (db clock)
    not_before_ms          bigint,                   -- delayed start (db clock)
    trace_context          text,                     -- W3C traceparent of the workflow span
    created_at             bigint NOT NULL,
    updated_at             bigint NOT NULL,
    started_at             bigint,                   -- first time an executor ran it
    finished_at            bigint
);

CREATE INDEX workflows_status_executor ON workflows (status, executor_id);
CREATE INDEX workflows_created_at ON workflows (created_at);
CREATE INDEX workflows_name_created_at ON workflows (name, created_at);
CREATE INDEX workflows_parent ON workflows (parent_workflow_id)
    WHERE parent_workflow_id IS NOT NULL;
CREATE INDEX workflows_queue ON workflows (queue_name, status, priority, created_at)
    WHERE queue_name IS NOT NULL;
CREATE UNIQUE INDEX workflows_queue_dedup ON workflows (queue_name, dedup_id)
    WHERE dedup_id IS NOT NULL AND status IN ('ENQUEUED', 'PENDING');

CREATE TABLE steps (
    workflow_id          text NOT NULL REFERENCES workflows (workflow_id) ON DELETE CASCADE,
    step_number          integer NOT NULL,
    name                 text NOT NULL,
    kind                 text NOT NULL,              -- orchestrator.types.StepKind
    output               text,                       -- JSON result (null-able)
    error                text,                       -- JSON-encoded exception if it failed
    attempts             integer NOT NULL DEFAULT 1,
    child_workflow_id    text,
    compensation         text,                       -- registered name of its compensation
    compensation_input   text,                       -- JSON: arguments + result it receives
    compensates_step     integer,                    -- for kind 'compensation'
    started_at           bigint,
    finished_at          bigint NOT NULL,
    seq                  bigint GENERATED ALWAYS AS IDENTITY,  -- order of completion
    PRIMARY KEY (workflow_id, step_number)
);

CREATE TABLE messages (
    message_id        bigserial PRIMARY KEY,
    destination_id    text NOT NULL REFERENCES workflows (workflow_id) ON DELETE CASCADE,
    topic             text NOT NULL,                 -- '' is the default topic
    payload           text NOT NULL,                 -- JSON
    idempotency_key   text,
    consumed          boolean NOT NULL DEFAULT false,
    created_at        bigint NOT NULL
);

CREATE INDEX messages_unconsumed ON messages (destination_id, topic, message_id)
    WHERE NOT consumed;
CREATE UNIQUE INDEX messages_idempotency ON messages (destination_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE events (
    workflow_id   text NOT NULL REFERENCES workflows (workflow_id) ON DELETE CASCADE,
    key           text NOT NULL,
    value         text NOT NULL,                     -- JSON
    updated_at    bigint NOT NULL,
    PRIMARY KEY (workflow_id, key)
);

CREATE TABLE streams (
    workflow_id   text NOT NULL REFERENCES workflows (workflow_id) ON DELETE CASCADE,
    key           text NOT NULL,
    position      integer NOT NULL,
    value         text,                              -- JSON; null on the closing row
    closed        boolean NOT NULL DEFAULT false,
    created_at    bigint NOT NULL,
    PRIMARY KEY (workflow_id, key, position)
);
