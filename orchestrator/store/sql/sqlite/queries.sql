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

-- get_workflows --
-- Many workflows by id (those that exist).
SELECT * FROM workflows WHERE workflow_id IN (SELECT value FROM json_each(:workflow_ids))

-- get_workflow_by_dedup --
-- The active workflow holding a dedup id on a queue (to name it in the error).
SELECT workflow_id FROM workflows
WHERE queue_name = :queue_name AND dedup_id = :dedup_id
    AND status IN ('ENQUEUED', 'PENDING')

-- list_workflows --
-- Workflows matching the filters (NULL: any), newest first; created_* bounds are inclusive.
SELECT *, rowid AS cursor_seq FROM workflows
WHERE (:statuses IS NULL OR status IN (SELECT value FROM json_each(:statuses)))
    AND (:name IS NULL OR name = :name)
    AND (:queue_name IS NULL OR queue_name = :queue_name)
    AND (:executor_id IS NULL OR executor_id = :executor_id)
    AND (:parent_workflow_id IS NULL OR parent_workflow_id = :parent_workflow_id)
    AND (:created_after_ms IS NULL OR created_at >= :created_after_ms)
    AND (:created_before_ms IS NULL OR created_at <= :created_before_ms)
    AND (:workflow_ids IS NULL OR workflow_id IN (SELECT value FROM json_each(:workflow_ids)))
    AND (:app_version IS NULL OR app_version = :app_version)
    AND (:id_prefix IS NULL OR substr(workflow_id, 1, length(:id_prefix)) = :id_prefix)
    AND (:attributes IS NULL OR workflow_id IN (
        SELECT a.workflow_id FROM workflow_attributes AS a
        JOIN json_each(:attributes) AS wanted
            ON a.name = wanted.key AND a.value = wanted.value
        GROUP BY a.workflow_id
        HAVING count(*) = (SELECT count(*) FROM json_each(:attributes))
    ))
    AND (:cursor_created IS NULL OR (created_at, rowid) < (:cursor_created, :cursor_seq))
    AND (NOT :stranded OR (
        status IN ('PENDING', 'COMPENSATING') AND NOT EXISTS (
        SELECT 1 FROM workers
        WHERE workers.app_version = workflows.app_version AND lease_expires_at > now_ms()
    )
    ))
ORDER BY created_at DESC, rowid DESC
LIMIT :limit OFFSET :offset

-- list_workflows_ascending --
-- Same filters as list_workflows, oldest first.
SELECT *, rowid AS cursor_seq FROM workflows
WHERE (:statuses IS NULL OR status IN (SELECT value FROM json_each(:statuses)))
    AND (:name IS NULL OR name = :name)
    AND (:queue_name IS NULL OR queue_name = :queue_name)
    AND (:executor_id IS NULL OR executor_id = :executor_id)
    AND (:parent_workflow_id IS NULL OR parent_workflow_id = :parent_workflow_id)
    AND (:created_after_ms IS NULL OR created_at >= :created_after_ms)
    AND (:created_before_ms IS NULL OR created_at <= :created_before_ms)
    AND (:workflow_ids IS NULL OR workflow_id IN (SELECT value FROM json_each(:workflow_ids)))
    AND (:app_version IS NULL OR app_version = :app_version)
    AND (:id_prefix IS NULL OR substr(workflow_id, 1, length(:id_prefix)) = :id_prefix)
    AND (:attributes IS NULL OR workflow_id IN (
        SELECT a.workflow_id FROM workflow_attributes AS a
        JOIN json_each(:attributes) AS wanted
            ON a.name = wanted.key AND a.value = wanted.value
        GROUP BY a.workflow_id
        HAVING count(*) = (SELECT count(*) FROM json_each(:attributes))
    ))
    AND (:cursor_created IS NULL OR (created_at, rowid) > (:cursor_created, :cursor_seq))
    AND (NOT :stranded OR (
        status IN ('PENDING', 'COMPENSATING') AND NOT EXISTS (
        SELECT 1 FROM workers
        WHERE workers.app_version = workflows.app_version AND lease_expires_at > now_ms()
    )
    ))
ORDER BY created_at ASC, rowid ASC
LIMIT :limit OFFSET :offset

-- count_workflows --
-- How many workflows match the filters (those of list_workflows; no cursor), per status.
SELECT status, count(*) AS n FROM workflows
WHERE (:statuses IS NULL OR status IN (SELECT value FROM json_each(:statuses)))
    AND (:name IS NULL OR name = :name)
    AND (:queue_name IS NULL OR queue_name = :queue_name)
    AND (:executor_id IS NULL OR executor_id = :executor_id)
    AND (:parent_workflow_id IS NULL OR parent_workflow_id = :parent_workflow_id)
    AND (:created_after_ms IS NULL OR created_at >= :created_after_ms)
    AND (:created_before_ms IS NULL OR created_at <= :created_before_ms)
    AND (:workflow_ids IS NULL OR workflow_id IN (SELECT value FROM json_each(:workflow_ids)))
    AND (:app_version IS NULL OR app_version = :app_version)
    AND (:id_prefix IS NULL OR substr(workflow_id, 1, length(:id_prefix)) = :id_prefix)
    AND (:attributes IS NULL OR workflow_id IN (
        SELECT a.workflow_id FROM workflow_attributes AS a
        JOIN json_each(:attributes) AS wanted
            ON a.name = wanted.key AND a.value = wanted.value
        GROUP BY a.workflow_id
        HAVING count(*) = (SELECT count(*) FROM json_each(:attributes))
    ))
    AND (NOT :stranded OR (
        status IN ('PENDING', 'COMPENSATING') AND NOT EXISTS (
        SELECT 1 FROM workers
        WHERE workers.app_version = workflows.app_version AND lease_expires_at > now_ms()
    )
    ))
GROUP BY status

-- finish_workflow --
-- Write a final status with its output or error, only while the workflow is running (and, from a run, only while its epoch owns it).
UPDATE workflows
SET status = :status, output = :output, error = :error,
    finished_at = clock.now, updated_at = clock.now
FROM (SELECT now_ms() AS now) AS clock
WHERE workflow_id = :workflow_id AND status IN ('PENDING', 'COMPENSATING')
    AND (:epoch IS NULL OR owner_epoch = :epoch)

-- finish_pending_workflow --
-- Write SUCCESS's output only while PENDING: with the workflow's last step, in its transaction.
UPDATE workflows
SET status = :status, output = :output, error = NULL,
    finished_at = clock.now, updated_at = clock.now
FROM (SELECT now_ms() AS now) AS clock
WHERE workflow_id = :workflow_id AND status = 'PENDING'
    AND (:epoch IS NULL OR owner_epoch = :epoch)

-- transition_workflow --
-- Move to a status from one of the given ones (from a run: only while its epoch owns it); entering PENDING starts the deadline clock.
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
    AND (:epoch IS NULL OR owner_epoch = :epoch)
RETURNING *

-- resume_workflow --
-- Run a workflow again on an executor (PENDING, or COMPENSATING to retry a rollback, which
-- keeps the error that triggered it): clear its outcome, attempts and deadline; a new epoch.
UPDATE workflows
SET status = :to_status, executor_id = :executor_id, app_version = :app_version,
    owner_epoch = owner_epoch + 1,
    output = NULL, finished_at = NULL, recovery_attempts = 0,
    error = CASE WHEN :to_status = 'COMPENSATING' THEN error END,
    rollback_after_step = CASE WHEN :to_status = 'COMPENSATING' THEN rollback_after_step END,
    deadline_ms = clock.now + timeout_ms,
    started_at = COALESCE(started_at, clock.now), updated_at = clock.now
FROM (SELECT now_ms() AS now) AS clock
WHERE workflow_id = :workflow_id AND status IN (SELECT value FROM json_each(:from_statuses))
RETURNING *

-- claim_for_recovery --
-- Count one more recovery attempt on every running workflow of an executor (and version); each run of them gets a new epoch.
UPDATE workflows
SET recovery_attempts = recovery_attempts + 1, owner_epoch = owner_epoch + 1, updated_at = now_ms()
WHERE executor_id = :executor_id AND status IN ('PENDING', 'COMPENSATING')
    AND (:app_version IS NULL OR app_version = :app_version)
RETURNING *

-- claim_orphans --
-- This executor's unfinished workflows that no run of it holds, untouched for settled_ms: claimed by a statement whose commit was acknowledged to nobody (the connection died in it, then it was retried); each gets a new epoch, to be run here.
UPDATE workflows
SET owner_epoch = owner_epoch + 1, updated_at = now_ms()
WHERE workflow_id IN (
    SELECT workflow_id FROM workflows
    WHERE status IN ('PENDING', 'COMPENSATING') AND executor_id = :executor_id
      AND updated_at < now_ms() - :settled_ms
      AND workflow_id NOT IN (SELECT value FROM json_each(:running))
      AND (:app_version IS NULL OR app_version = :app_version)
    ORDER BY created_at
    LIMIT :limit
)
RETURNING *

-- begin_rollback --
-- A run's rollback begins: remember the step number its compensations follow (kept if already set), only while COMPENSATING in the run's epoch; returns the number in effect.
UPDATE workflows
SET rollback_after_step = COALESCE(rollback_after_step, :after_step), updated_at = now_ms()
WHERE workflow_id = :workflow_id AND status = 'COMPENSATING' AND owner_epoch = :epoch
RETURNING rollback_after_step

-- load_steps --
-- A workflow's recorded steps in order.
SELECT *, rowid AS seq FROM steps WHERE workflow_id = :workflow_id ORDER BY step_number

-- record_step --
-- The checkpoint, in one round trip: insert unless the number is taken or the steps_fence
-- trigger refuses it (the workflow finished, or another epoch owns it); answer the workflow's
-- status (no row: not recorded).
INSERT INTO steps (
    workflow_id, step_number, name, kind, output, error, attempts, child_workflow_id,
    compensation, compensation_input, compensates_step, started_at, finished_at, epoch,
    args_hash
)
SELECT
    :workflow_id, :step_number, :name, :kind, :output, :error, :attempts, :child_workflow_id,
    :compensation, :compensation_input, :compensates_step, :started_at,
    COALESCE(:finished_at, now_ms()), :epoch, :args_hash
ON CONFLICT DO NOTHING
RETURNING (SELECT status FROM workflows WHERE workflows.workflow_id = steps.workflow_id) AS status

-- delete_steps --
-- Forget a workflow's steps from a number on (resume retries failed steps at the end).
DELETE FROM steps WHERE workflow_id = :workflow_id AND step_number >= :from_step

-- copy_steps --
-- Copy a workflow's steps numbered below a bound to another workflow (fork), in its epoch.
INSERT INTO steps (
    workflow_id, step_number, name, kind, output, error, attempts, child_workflow_id,
    compensation, compensation_input, compensates_step, started_at, finished_at, epoch,
    args_hash
)
SELECT
    :workflow_id, step_number, name, kind, output, error, attempts, child_workflow_id,
    compensation, compensation_input, compensates_step, started_at, finished_at,
    (SELECT owner_epoch FROM workflows WHERE workflow_id = :workflow_id), args_hash
FROM steps
WHERE workflow_id = :source_id AND step_number < :before_step
ORDER BY rowid

-- insert_message --
-- Add a message unless its idempotency key was already used for that destination.
INSERT INTO messages (destination_id, topic, payload, idempotency_key, created_at)
VALUES (:destination_id, :topic, :payload, :idempotency_key, now_ms())
ON CONFLICT DO NOTHING

-- message_key_used --
-- Whether a message with this idempotency key was already sent to this workflow (a redelivery).
SELECT 1 AS used FROM messages
WHERE destination_id = :destination_id AND idempotency_key = :idempotency_key

-- message_waiting --
-- Whether any unconsumed message waits on a workflow's topic (a delivery to its parked recv must not pass it).
SELECT 1 AS waiting FROM messages
WHERE destination_id = :destination_id AND topic = :topic AND NOT consumed
LIMIT 1

-- insert_message_consumed --
-- Add a message already consumed by the recv step recorded with it (a delivery to a recv parked in the sender's process), unless its idempotency key was used.
INSERT INTO messages (destination_id, topic, payload, idempotency_key, created_at, consumed)
VALUES (:destination_id, :topic, :payload, :idempotency_key, now_ms(), 1)
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

-- lock_queue --
-- Serialize dequeues of one queue: a write transaction (BEGIN IMMEDIATE) already does on SQLite.
SELECT :queue_name AS queue_name

-- queue_counts --
-- A queue's (or one partition's) running workflows, this executor's share, and starts in the rate window.
SELECT
    coalesce(sum(status IN ('PENDING', 'COMPENSATING')), 0) AS running,
    coalesce(sum(status IN ('PENDING', 'COMPENSATING') AND executor_id = :executor_id), 0) AS mine,
    coalesce(sum(started_at >= now_ms() - :window_ms), 0) AS recent,
    min(CASE WHEN started_at >= now_ms() - :window_ms THEN started_at END) AS oldest_recent
FROM workflows
WHERE queue_name = :queue_name
  AND (:partition_key IS NULL OR partition_key = :partition_key)
  AND (status IN ('PENDING', 'COMPENSATING') OR started_at >= now_ms() - :window_ms)

-- queue_partitions --
-- The partition keys that have workflows waiting on a queue.
SELECT DISTINCT partition_key FROM workflows
WHERE queue_name = :queue_name AND status = 'ENQUEUED'
LIMIT 1000

-- claim_queued --
-- Start up to n due workflows of a queue on an executor (with worker_concurrency: no more than it minus what the executor runs of the queue): lowest priority number first (when the queue uses priorities), then oldest; next_due: when the earliest delayed one becomes due.
UPDATE workflows
SET status = 'PENDING', executor_id = :executor_id, app_version = :app_version,
    owner_epoch = owner_epoch + 1, started_at = now_ms(), updated_at = now_ms(), deadline_ms = now_ms() + timeout_ms
WHERE workflow_id IN (
    SELECT workflow_id FROM workflows
    WHERE queue_name = :queue_name AND status = 'ENQUEUED'
      AND (not_before_ms IS NULL OR not_before_ms <= now_ms())
      AND (:partition_key IS NULL OR partition_key = :partition_key)
    ORDER BY CASE WHEN :use_priority THEN priority ELSE 0 END, rowid
    LIMIT CASE WHEN :worker_concurrency IS NULL THEN :n
        ELSE max(0, min(:n, :worker_concurrency - (
            SELECT count(*) FROM workflows AS mine
            WHERE mine.queue_name = :queue_name
              AND mine.status IN ('PENDING', 'COMPENSATING')
              AND mine.executor_id = :executor_id
              AND (:partition_key IS NULL OR mine.partition_key = :partition_key)
        ))) END
)
RETURNING *, (
    SELECT min(delayed.not_before_ms) FROM workflows AS delayed
    WHERE delayed.queue_name = :queue_name AND delayed.status = 'ENQUEUED'
      AND delayed.not_before_ms > now_ms()
) AS next_due

-- next_delayed --
-- When the earliest delayed workflow of a queue becomes due.
SELECT min(not_before_ms) AS due FROM workflows
WHERE queue_name = :queue_name AND status = 'ENQUEUED' AND not_before_ms > now_ms()

-- queue_stats --
-- Depth, running count and recent starts of every queue (or one).
SELECT
    queue_name,
    coalesce(sum(status = 'ENQUEUED'), 0) AS depth,
    coalesce(sum(status IN ('PENDING', 'COMPENSATING')), 0) AS running,
    coalesce(sum(started_at >= now_ms() - 60000), 0) AS started_last_minute
FROM workflows
WHERE queue_name IS NOT NULL AND (:queue_name IS NULL OR queue_name = :queue_name)
  AND (status IN ('ENQUEUED', 'PENDING', 'COMPENSATING') OR started_at >= now_ms() - 60000)
GROUP BY queue_name
ORDER BY queue_name

-- register_worker --
-- Register (or re-register) an executor with a fresh lease.
INSERT INTO workers (executor_id, app_version, host, pid, started_at, heartbeat_at, lease_expires_at)
VALUES (:executor_id, :app_version, :host, :pid, now_ms(), now_ms(), now_ms() + :lease_ms)
ON CONFLICT (executor_id) DO UPDATE
    SET app_version = excluded.app_version, host = excluded.host, pid = excluded.pid,
        started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at,
        lease_expires_at = excluded.lease_expires_at
RETURNING lease_expires_at

-- renew_lease --
-- Heartbeat: extend a lease that has not expired (an expired one was lost: no row).
UPDATE workers SET heartbeat_at = now_ms(), lease_expires_at = now_ms() + :lease_ms
WHERE executor_id = :executor_id AND lease_expires_at > now_ms()
RETURNING lease_expires_at

-- release_worker --
-- A worker shutting down gives up its lease at once, so others take its work over now.
UPDATE workers SET lease_expires_at = now_ms() - 1 WHERE executor_id = :executor_id

-- take_over --
-- Claim unfinished workflows of dead workers (expired leases), and workflows nobody runs (a re-queued workflow cancelled with rollback, a workflow moved to this version), of the same app version; each row goes to exactly one taker. Queued PENDING ones go back to their queue (ENQUEUED, steps kept) so its limits apply.
UPDATE workflows
SET executor_id = CASE WHEN queue_name IS NOT NULL AND status = 'PENDING' THEN NULL ELSE :executor_id END,
    status = CASE WHEN queue_name IS NOT NULL AND status = 'PENDING' THEN 'ENQUEUED' ELSE status END,
    recovery_attempts = recovery_attempts + 1, owner_epoch = owner_epoch + 1,
    updated_at = now_ms()
WHERE workflow_id IN (
    SELECT workflow_id FROM workflows
    WHERE status IN ('PENDING', 'COMPENSATING')
      AND (
          executor_id IN (
              SELECT executor_id FROM workers
              WHERE lease_expires_at < now_ms() AND executor_id <> :executor_id
          )
          OR (executor_id IS NULL AND status IN ('PENDING', 'COMPENSATING'))
      )
      AND (:app_version IS NULL OR app_version = :app_version)
    ORDER BY created_at
    LIMIT :limit
)
RETURNING *

-- forget_dead_workers --
-- Drop dead workers that have nothing left to take over.
DELETE FROM workers
WHERE lease_expires_at < now_ms() - 60000
  AND NOT EXISTS (
      SELECT 1 FROM workflows
      WHERE workflows.executor_id = workers.executor_id AND status IN ('PENDING', 'COMPENSATING')
  )

-- owned_workflows --
-- Which of these workflows this executor still owns (after a lost lease).
SELECT workflow_id FROM workflows
WHERE executor_id = :executor_id AND workflow_id IN (SELECT value FROM json_each(:workflow_ids))
  AND status IN ('PENDING', 'COMPENSATING')

-- list_workers --
-- Registered workers and their leases.
SELECT *, lease_expires_at > now_ms() AS alive FROM workers ORDER BY started_at

-- upsert_schedule --
-- Create a schedule, or replace its definition (keeping last_tick_ms and paused). updated_at
-- moves only when the definition changes (workers tick a changed schedule from then on), not
-- when every worker's launch saves the same declared schedule again.
INSERT INTO schedules (name, workflow_name, cron, input, paused, catch_up, declared, created_at, updated_at)
VALUES (:name, :workflow_name, :cron, :input, :paused, :catch_up, :declared, now_ms(), now_ms())
ON CONFLICT (name) DO UPDATE
    SET workflow_name = excluded.workflow_name, cron = excluded.cron, input = excluded.input,
        catch_up = excluded.catch_up, declared = excluded.declared,
        updated_at = CASE
            WHEN schedules.workflow_name IS NOT excluded.workflow_name
                OR schedules.cron IS NOT excluded.cron OR schedules.input IS NOT excluded.input
                OR schedules.catch_up IS NOT excluded.catch_up
                OR schedules.declared IS NOT excluded.declared
            THEN excluded.updated_at ELSE schedules.updated_at END
RETURNING *

-- insert_schedule --
-- Create a schedule unless the name is taken (no row then).
INSERT INTO schedules (name, workflow_name, cron, input, paused, catch_up, declared, created_at, updated_at)
VALUES (:name, :workflow_name, :cron, :input, :paused, :catch_up, :declared, now_ms(), now_ms())
ON CONFLICT (name) DO NOTHING
RETURNING *

-- list_schedules --
-- Every schedule by name.
SELECT * FROM schedules ORDER BY name

-- set_schedule_paused --
-- Pause or resume a schedule.
UPDATE schedules SET paused = :paused, updated_at = now_ms()
WHERE name = :name
RETURNING *

-- delete_schedule --
-- Delete a schedule (its past runs stay).
DELETE FROM schedules WHERE name = :name

-- mark_schedule_tick --
-- Remember the latest tick a schedule ran (for catch-up after downtime).
UPDATE schedules SET last_tick_ms = max(coalesce(last_tick_ms, 0), :tick_ms)
WHERE name = :name

-- stranded_counts --
-- Unfinished workflows (PENDING, COMPENSATING) of application versions no live worker serves, by version: nobody will run them until a worker of their version comes, or they are moved to one.
SELECT app_version, count(*) AS count FROM workflows
WHERE status IN ('PENDING', 'COMPENSATING')
    AND NOT EXISTS (
        SELECT 1 FROM workers
        WHERE workers.app_version = workflows.app_version AND lease_expires_at > now_ms()
    )
GROUP BY app_version
ORDER BY count(*) DESC, app_version

-- see_version --
-- A worker of this application version is running: remember the version, first and last seen.
INSERT INTO app_versions (app_version, first_seen_ms, last_seen_ms)
VALUES (:app_version, now_ms(), now_ms())
ON CONFLICT (app_version) DO UPDATE SET last_seen_ms = max(app_versions.last_seen_ms, excluded.last_seen_ms)

-- list_versions --
-- Every application version seen (by a worker, or on a workflow): first and last seen, live workers, unfinished and total workflows.
WITH seen AS (
    SELECT app_version, first_seen_ms, last_seen_ms FROM app_versions
), runs AS (
    SELECT app_version, min(created_at) AS first_ms, max(updated_at) AS last_ms,
        sum(status IN ('PENDING', 'COMPENSATING')) AS unfinished,
        count(*) AS total
    FROM workflows WHERE app_version IS NOT NULL GROUP BY app_version
), live AS (
    SELECT app_version, count(*) AS live_workers, max(heartbeat_at) AS heartbeat_ms
    FROM workers WHERE lease_expires_at > now_ms() AND app_version IS NOT NULL
    GROUP BY app_version
), versions AS (
    SELECT app_version FROM seen UNION SELECT app_version FROM runs UNION SELECT app_version FROM live
)
SELECT v.app_version,
    min(COALESCE(seen.first_seen_ms, runs.first_ms, live.heartbeat_ms),
        COALESCE(runs.first_ms, seen.first_seen_ms, live.heartbeat_ms),
        COALESCE(live.heartbeat_ms, seen.first_seen_ms, runs.first_ms)) AS first_seen_ms,
    max(COALESCE(seen.last_seen_ms, runs.last_ms, live.heartbeat_ms),
        COALESCE(runs.last_ms, seen.last_seen_ms, live.heartbeat_ms),
        COALESCE(live.heartbeat_ms, seen.last_seen_ms, runs.last_ms)) AS last_seen_ms,
    COALESCE(live.live_workers, 0) AS live_workers,
    COALESCE(runs.unfinished, 0) AS unfinished,
    COALESCE(runs.total, 0) AS total
FROM versions v
LEFT JOIN seen ON seen.app_version = v.app_version
LEFT JOIN runs ON runs.app_version = v.app_version
LEFT JOIN live ON live.app_version = v.app_version
ORDER BY 3 DESC, 1

-- move_workflows --
-- Give unfinished workflows another application version (an upgrade's adoption, an operator's move), unless a live worker runs them: they lose their executor and start a new epoch (anything still running them is fenced off), and any live worker of the version takes them over (queued ones go back to their queue). Returns the rows moved.
UPDATE workflows
SET app_version = :app_version, executor_id = NULL,
    owner_epoch = owner_epoch + 1, updated_at = now_ms()
WHERE workflow_id IN (SELECT value FROM json_each(:workflow_ids))
    AND status IN ('PENDING', 'COMPENSATING', 'ENQUEUED')
    AND (executor_id IS NULL OR executor_id NOT IN (
        SELECT executor_id FROM workers WHERE lease_expires_at > now_ms()
    ))
RETURNING *

-- record_audit --
-- One operator action, as it happened (never updated). Returns the row.
INSERT INTO audit_log (at_ms, actor, role, surface, action, workflow_id, reason, detail)
VALUES (now_ms(), :actor, :role, :surface, :action, :workflow_id, :reason, :detail)
RETURNING *

-- list_audit --
-- Operator actions, newest first, optionally of one workflow or one action, before a cursor (an id).
SELECT * FROM audit_log
WHERE (:workflow_id IS NULL OR workflow_id = :workflow_id)
    AND (:action IS NULL OR action = :action)
    AND (:before_id IS NULL OR id < :before_id)
ORDER BY id DESC
LIMIT :limit

-- lock_finished_workflows --
-- Of these workflows, the finished ones (any final status), for their deletion in this transaction (BEGIN IMMEDIATE already holds the write lock); in id order.
SELECT workflow_id FROM workflows
WHERE workflow_id IN (SELECT value FROM json_each(:workflow_ids))
    AND status IN ('SUCCESS', 'ERROR', 'CANCELLED', 'COMPENSATED', 'COMPENSATION_FAILED',
        'MAX_RECOVERY_ATTEMPTS_EXCEEDED')
ORDER BY workflow_id

-- expired_workflows --
-- Up to a batch of workflows of one final status that finished before now minus a retention (database clock), oldest first; the database's write lock serializes sweeps.
SELECT workflow_id FROM workflows
WHERE status = :status AND finished_at IS NOT NULL
    AND finished_at < now_ms() - :retention_ms
ORDER BY finished_at
LIMIT :limit

-- delete_workflow_steps --
-- Delete the steps of these workflows (part of deleting them).
DELETE FROM steps WHERE workflow_id IN (SELECT value FROM json_each(:workflow_ids))

-- delete_workflow_messages --
-- Delete the messages addressed to these workflows (part of deleting them).
DELETE FROM messages WHERE destination_id IN (SELECT value FROM json_each(:workflow_ids))

-- delete_workflow_events --
-- Delete the events of these workflows (part of deleting them).
DELETE FROM events WHERE workflow_id IN (SELECT value FROM json_each(:workflow_ids))

-- delete_workflow_streams --
-- Delete the streams of these workflows (part of deleting them).
DELETE FROM streams WHERE workflow_id IN (SELECT value FROM json_each(:workflow_ids))

-- delete_workflow_rows --
-- Delete these workflows' rows (their steps, messages, events and streams went first); returns the ids deleted.
DELETE FROM workflows WHERE workflow_id IN (SELECT value FROM json_each(:workflow_ids))
RETURNING workflow_id

-- session_schema --
-- Unused: only a PostgreSQL store behind a transaction pooler checks its sessions.
SELECT NULL AS user, NULL AS database, NULL AS schema

-- connection_target --
-- Unused: a transactional start needs PostgreSQL (the store refuses a caller's connection).
SELECT NULL AS database, 0 AS has_store

-- enter_schema --
-- Unused: see connection_target.
SELECT NULL

-- leave_schema --
-- Unused: see connection_target.
SELECT NULL

-- notify_unclaimed --
-- Unused: see connection_target.
SELECT NULL

-- claim_workflow --
-- Take a PENDING workflow nobody runs to run it here; the first claimer wins, the others get no row.
UPDATE workflows
SET executor_id = :executor_id, owner_epoch = owner_epoch + 1, updated_at = now_ms()
WHERE workflow_id = :workflow_id AND status = 'PENDING' AND executor_id IS NULL
    AND (:app_version IS NULL OR app_version = :app_version)
RETURNING *

-- insert_workflow_attributes --
-- Set (insert or overwrite) attributes of a workflow, given as a JSON object of name -> text value.
INSERT INTO workflow_attributes (workflow_id, name, value)
SELECT :workflow_id, wanted.key, wanted.value
FROM json_each(:attributes) AS wanted
WHERE true  -- an INSERT ... SELECT needs a WHERE before ON CONFLICT in SQLite
ON CONFLICT (workflow_id, name) DO UPDATE SET value = excluded.value

-- count_workflow_attributes --
-- How many attributes a workflow has (the per-workflow limit is checked after a set).
SELECT count(*) AS n FROM workflow_attributes WHERE workflow_id = :workflow_id

-- get_workflow_attributes --
-- The attributes of these workflows (a listing's page, or one workflow), by workflow then name.
SELECT workflow_id, name, value FROM workflow_attributes
WHERE workflow_id IN (SELECT value FROM json_each(:workflow_ids))
ORDER BY workflow_id, name

-- delete_workflow_attributes --
-- Delete the attributes of these workflows (part of deleting them).
DELETE FROM workflow_attributes WHERE workflow_id IN (SELECT value FROM json_each(:workflow_ids))

-- copy_workflow_attributes --
-- Give a fork its source's attributes (it replays the steps that set them, without writing).
INSERT INTO workflow_attributes (workflow_id, name, value)
SELECT :workflow_id, name, value FROM workflow_attributes
WHERE workflow_id = :source_id
ON CONFLICT (workflow_id, name) DO NOTHING

-- lock_message_keys --
-- No-op: the database's write lock already serializes sends by key and claims.
SELECT NULL

-- key_holder --
-- The newest unfinished workflow holding an attribute (a message key), if any, with its subject (the write lock keeps it until commit).
SELECT w.workflow_id, s.value AS subject FROM workflow_attributes AS a
JOIN workflows AS w ON w.workflow_id = a.workflow_id
LEFT JOIN workflow_attributes AS s
    ON s.workflow_id = w.workflow_id AND s.name = :subject_attribute
WHERE a.name = :name AND a.value = :value
    AND w.status NOT IN (SELECT value FROM json_each(:final_statuses))
ORDER BY w.created_at DESC, w.workflow_id DESC
LIMIT 1

-- key_message_used --
-- The workflow a message with this idempotency key already went to, holding the key, if any.
SELECT m.destination_id FROM workflow_attributes AS a
JOIN messages AS m ON m.destination_id = a.workflow_id
WHERE a.name = :name AND a.value = :value AND m.idempotency_key = :idempotency_key
LIMIT 1

-- kept_message_expiry --
-- Until when a message kept for a key under this idempotency key waits (a retried send's answer).
SELECT expires_at FROM pending_messages
WHERE key_name = :name AND key_value = :value
    AND idempotency_key = :idempotency_key

-- delete_expired_pending_key --
-- Forget a key's kept messages whose time is up.
DELETE FROM pending_messages
WHERE key_name = :name AND key_value = :value AND expires_at <= now_ms()

-- keep_message --
-- Keep a message for a key until a holder starts (or it expires), unless its idempotency key was kept already; returns its expiry.
INSERT INTO pending_messages (
    key_name, key_value, topic, payload, idempotency_key, created_at, expires_at
)
VALUES (:name, :value, :topic, :payload, :idempotency_key, now_ms(), now_ms() + :keep_ms)
ON CONFLICT DO NOTHING
RETURNING expires_at

-- claim_pending_messages --
-- Move the unexpired kept messages of these keys (a JSON object name -> value) into a workflow's mailbox, in order of sending.
INSERT OR IGNORE INTO messages (destination_id, topic, payload, idempotency_key, created_at)
SELECT :workflow_id, p.topic, p.payload, p.idempotency_key, now_ms()
FROM pending_messages AS p
JOIN json_each(:keys) AS wanted ON p.key_name = wanted.key AND p.key_value = wanted.value
WHERE p.expires_at > now_ms()
ORDER BY p.pending_id
RETURNING message_id, payload

-- set_message_payload --
-- Replace a message's stored payload (a claimed kept message sealed again for its new holder).
UPDATE messages SET payload = :payload WHERE message_id = :message_id

-- delete_pending_messages --
-- Forget every kept message of these keys (claimed just before, or expired).
DELETE FROM pending_messages
WHERE EXISTS (
    SELECT 1 FROM json_each(:keys) AS wanted
    WHERE wanted.key = pending_messages.key_name AND wanted.value = pending_messages.key_value
)

-- get_subject_key --
-- A subject's data key (wrapped), if it has one.
SELECT key_id, wrapped_key FROM subject_keys WHERE subject = :subject

-- insert_subject_key --
-- Give a subject its data key unless a concurrent writer just did (the caller reads it back).
INSERT INTO subject_keys (subject, key_id, wrapped_key, created_at)
VALUES (:subject, :key_id, :wrapped_key, now_ms())
ON CONFLICT (subject) DO NOTHING

-- subject_keys_to_rewrap --
-- A page of data keys not wrapped under this master key, after a subject (keyset order; a read, no lock).
SELECT subject, key_id, wrapped_key FROM subject_keys
WHERE subject > :after AND substr(wrapped_key, 1, instr(wrapped_key, ':') - 1) <> :master_key_id
ORDER BY subject
LIMIT :limit

-- rewrap_subject_key --
-- Store a data key wrapped anew, only if its row is still the one read (not erased, renewed or rewrapped since).
UPDATE subject_keys SET wrapped_key = :new_wrapped_key
WHERE subject = :subject AND key_id = :key_id
    AND wrapped_key = :wrapped_key

-- delete_subject_key --
-- Erase a subject's data key: its payloads become unreadable.
DELETE FROM subject_keys WHERE subject = :subject
