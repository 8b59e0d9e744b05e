-- Every query the SQLite store runs, by name, the same names as sql/postgres/queries.sql.
-- Parameters are sqlite3's :name; list parameters arrive as JSON arrays (read with json_each).
-- now_ms() is a Python function registered on the connection (the store's clock). A "running"
-- workflow is PENDING or COMPENSATING: only then may an executor write checkpoints.
-- The store's single connection runs one operation at a time, so nothing needs row locks.

-- configure_connection --
-- Per-connection settings: enforce foreign keys; WAL with synchronous=NORMAL (files only).
PRAGMA foreign_keys = ON;
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;

-- create_schema --
-- No-op: an SQLite file is one schema.
SELECT NULL

-- listen --
-- No-op: notifications are delivered in process after each commit (see 0002_notify.sql).
SELECT NULL

-- lock_migrations --
-- No-op: BEGIN IMMEDIATE around each migration serializes processes sharing the file.
SELECT NULL

-- unlock_migrations --
-- No-op, as lock_migrations.
SELECT NULL

-- create_migrations_table --
-- The version table: one row per applied migration file.
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    applied_at  bigint NOT NULL
)

-- applied_migrations --
-- The migrations applied so far, oldest first.
SELECT version, name FROM schema_migrations ORDER BY version

-- record_migration --
-- Remember that a migration was applied (in the same transaction as the migration).
INSERT INTO schema_migrations (version, name, applied_at)
VALUES (:version, :name, now_ms())

-- now_ms --
-- The database clock in epoch milliseconds.
SELECT now_ms() AS now

-- insert_workflow --
-- Insert a new workflow unless its id (or its active dedup id) exists; returns the new row.
INSERT INTO workflows (
    workflow_id, name, status, input, executor_id, app_version, queue_name, priority, dedup_id,
    partition_key, parent_workflow_id, max_recovery_attempts, timeout_ms, deadline_ms,
    not_before_ms, trace_context, created_at, updated_at, started_at
)
SELECT
    :workflow_id, :name, :status, :input, :executor_id, :app_version, :queue_name, :priority,
    :dedup_id, :partition_key, :parent_workflow_id, :max_recovery_attempts, :timeout_ms,
    CASE WHEN :status = 'PENDING' THEN clock.now + :timeout_ms END,
    clock.now + :delay_ms,
    :trace_context, clock.now, clock.now,
    CASE WHEN :status = 'PENDING' THEN clock.now END
FROM (SELECT now_ms() AS now) AS clock
WHERE true  -- an INSERT ... SELECT needs a WHERE before ON CONFLICT in SQLite
ON CONFLICT DO NOTHING
RETURNING *

-- get_workflow --
-- One workflow by id.
SELECT * FROM workflows WHERE workflow_id = :workflow_id

-- get_workflow_by_dedup --
-- The active workflow holding a dedup id on a queue (to name it in the error).
SELECT workflow_id FROM workflows
WHERE queue_name = :queue_name AND dedup_id = :dedup_id
    AND status IN ('ENQUEUED', 'PENDING')

-- list_workflows --
-- Workflows matching the filters (NULL: any), newest first; created_* bounds are inclusive.
SELECT * FROM workflows
WHERE (:statuses IS NULL OR status IN (SELECT value FROM json_each(:statuses)))
    AND (:name IS NULL OR name = :name)
    AND (:queue_name IS NULL OR queue_name = :queue_name)
    AND (:executor_id IS NULL OR executor_id = :executor_id)
    AND (:parent_workflow_id IS NULL OR parent_workflow_id = :parent_workflow_id)
    AND (:created_after_ms IS NULL OR created_at >= :created_after_ms)
    AND (:created_before_ms IS NULL OR created_at <= :created_before_ms)
    AND (:workflow_ids IS NULL OR workflow_id IN (SELECT value FROM json_each(:workflow_ids)))
ORDER BY created_at DESC, workflow_id DESC
LIMIT :limit OFFSET :offset

-- list_workflows_ascending --
-- Same filters as list_workflows, oldest first.
SELECT * FROM workflows
WHERE (:statuses IS NULL OR status IN (SELECT value FROM json_each(:statuses)))
    AND (:name IS NULL OR name = :name)
    AND (:queue_name IS NULL OR queue_name = :queue_name)
    AND (:executor_id IS NULL OR executor_id = :executor_id)
    AND (:parent_workflow_id IS NULL OR parent_workflow_id = :parent_workflow_id)
    AND (:created_after_ms IS NULL OR created_at >= :created_after_ms)
    AND (:created_before_ms IS NULL OR created_at <= :created_before_ms)
    AND (:workflow_ids IS NULL OR workflow_id IN (SELECT value FROM json_each(:workflow_ids)))
ORDER BY created_at ASC, workflow_id ASC
LIMIT :limit OFFSET :offset

-- finish_workflow --
-- Write a final status with its output or error, only while the workflow is running.
UPDATE workflows
SET status = :status, output = :output, error = :error,
    finished_at = clock.now, updated_at = clock.now
FROM (SELECT now_ms() AS now) AS clock
WHERE workflow_id = :workflow_id AND status IN ('PENDING', 'COMPENSATING')

-- transition_workflow --
-- Move to a status from one of the given ones; entering PENDING starts the deadline clock.
UPDATE workflows
SET status = :to_status,
    error = COALESCE(:error, error),
    finished_at = CASE WHEN :terminal THEN clock.now END,
    started_at = CASE WHEN :to_status = 'PENDING'
        THEN COALESCE(started_at, clock.now) ELSE started_at END,
    deadline_ms = CASE WHEN :to_status = 'PENDING' AND deadline_ms IS NULL
        THEN clock.now + timeout_ms ELSE deadline_ms END,
    updated_at = clock.now
FROM (SELECT now_ms() AS now) AS clock
WHERE workflow_id = :workflow_id AND status IN (SELECT value FROM json_each(:from_statuses))
RETURNING *

-- resume_workflow --
-- Run a workflow again on an executor (PENDING, or COMPENSATING to retry a rollback, which
-- keeps the error that triggered it): clear its outcome, attempts and deadline.
UPDATE workflows
SET status = :to_status, executor_id = :executor_id, app_version = :app_version,
    output = NULL, finished_at = NULL, recovery_attempts = 0,
    error = CASE WHEN :to_status = 'COMPENSATING' THEN error END,
    deadline_ms = clock.now + timeout_ms,
    started_at = COALESCE(started_at, clock.now), updated_at = clock.now
FROM (SELECT now_ms() AS now) AS clock
WHERE workflow_id = :workflow_id AND status IN (SELECT value FROM json_each(:from_statuses))
RETURNING *

-- claim_for_recovery --
-- Count one more recovery attempt on every running workflow of an executor (and version).
UPDATE workflows
SET recovery_attempts = recovery_attempts + 1, updated_at = now_ms()
WHERE executor_id = :executor_id AND status IN ('PENDING', 'COMPENSATING')
    AND (:app_version IS NULL OR app_version = :app_version)
RETURNING *

-- load_steps --
-- A workflow's recorded steps in order.
SELECT *, rowid AS seq FROM steps WHERE workflow_id = :workflow_id ORDER BY step_number

-- record_step --
-- The checkpoint, in one round trip: insert unless the number is taken; answer the workflow's
-- status (no row: the number was taken). Written whatever the status: the effect happened.
INSERT INTO steps (
    workflow_id, step_number, name, kind, output, error, attempts, child_workflow_id,
    compensation, compensation_input, compensates_step, started_at, finished_at
)
SELECT
    :workflow_id, :step_number, :name, :kind, :output, :error, :attempts, :child_workflow_id,
    :compensation, :compensation_input, :compensates_step, :started_at, COALESCE(:finished_at, now_ms())
ON CONFLICT DO NOTHING
RETURNING (SELECT status FROM workflows WHERE workflows.workflow_id = steps.workflow_id) AS status

-- delete_steps --
-- Forget a workflow's steps from a number on (resume retries failed steps at the end).
DELETE FROM steps WHERE workflow_id = :workflow_id AND step_number >= :from_step

-- copy_steps --
-- Copy a workflow's steps numbered below a bound to another workflow (fork).
INSERT INTO steps (
    workflow_id, step_number, name, kind, output, error, attempts, child_workflow_id,
    compensation, compensation_input, compensates_step, started_at, finished_at
)
SELECT
    :workflow_id, step_number, name, kind, output, error, attempts, child_workflow_id,
    compensation, compensation_input, compensates_step, started_at, finished_at
FROM steps
WHERE workflow_id = :source_id AND step_number < :before_step
ORDER BY rowid

-- insert_message --
-- Add a message unless its idempotency key was already used for that destination.
INSERT INTO messages (destination_id, topic, payload, idempotency_key, created_at)
VALUES (:destination_id, :topic, :payload, :idempotency_key, now_ms())
ON CONFLICT DO NOTHING

-- consume_message --
-- Take the oldest unconsumed message of a topic.
UPDATE messages SET consumed = true
WHERE message_id = (
    SELECT message_id FROM messages
    WHERE destination_id = :workflow_id AND topic = :topic AND NOT consumed
    ORDER BY message_id
    LIMIT 1
)
RETURNING payload

-- set_event --
-- Publish (or overwrite) an event's value.
INSERT INTO events (workflow_id, key, value, updated_at)
VALUES (:workflow_id, :key, :value, now_ms())
ON CONFLICT (workflow_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at

-- get_event --
-- One event's value.
SELECT value FROM events WHERE workflow_id = :workflow_id AND key = :key

-- get_events --
-- Every event of a workflow.
SELECT key, value FROM events WHERE workflow_id = :workflow_id ORDER BY key

-- append_stream --
-- Append at the next position unless the stream is closed (then no row is inserted).
INSERT INTO streams (workflow_id, key, position, value, closed, created_at)
SELECT
    :workflow_id, :key,
    COALESCE((SELECT max(position) + 1 FROM streams WHERE workflow_id = :workflow_id AND key = :key), 0),
    :value, :closed, now_ms()
WHERE NOT EXISTS (
    SELECT 1 FROM streams WHERE workflow_id = :workflow_id AND key = :key AND closed
)

-- read_stream --
-- A stream's entries from a position on.
SELECT position, value, closed FROM streams
WHERE workflow_id = :workflow_id AND key = :key AND position >= :from_position
ORDER BY position
