-- Every query the PostgreSQL store runs, by name (orchestrator/store/queries.py loads them).
-- Connections set search_path to the store's schema, so table names are unqualified.
-- Parameters are psycopg's %(name)s; inside INSERT ... SELECT they carry a cast, because there
-- PostgreSQL cannot infer their type from a target column. A "running" workflow is PENDING or
-- COMPENSATING: only then may an executor write checkpoints.

-- configure_connection --
-- No-op: connections get their settings (search_path) from their connect options.
SELECT NULL

-- create_schema --
-- Create the store's schema ({schema} is filled in with psycopg.sql.Identifier).
CREATE SCHEMA IF NOT EXISTS {schema}

-- listen --
-- Subscribe this session to the store's notification channel ({channel}: an identifier).
LISTEN {channel}

-- lock_migrations --
-- Serialize migration runs of every process on this schema (session-level advisory lock).
SELECT pg_advisory_lock(%(lock_key)s::bigint)

-- unlock_migrations --
-- Release the lock taken by lock_migrations.
SELECT pg_advisory_unlock(%(lock_key)s::bigint)

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
VALUES (%(version)s, %(name)s, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)

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
    %(workflow_id)s::text, %(name)s::text, %(status)s::text, %(input)s::text,
    %(executor_id)s::text, %(app_version)s::text, %(queue_name)s::text, %(priority)s::integer,
    %(dedup_id)s::text, %(partition_key)s::text, %(parent_workflow_id)s::text,
    %(max_recovery_attempts)s::integer, %(timeout_ms)s::bigint,
    CASE WHEN %(status)s::text = 'PENDING' THEN clock.now + %(timeout_ms)s::bigint END,
    clock.now + %(delay_ms)s::bigint,
    %(trace_context)s::text, clock.now, clock.now,
    CASE WHEN %(status)s::text = 'PENDING' THEN clock.now END
FROM (SELECT now_ms() AS now) AS clock
ON CONFLICT DO NOTHING
RETURNING *

-- get_workflow --
-- One workflow by id.
SELECT * FROM workflows WHERE workflow_id = %(workflow_id)s

-- get_workflows --
-- Many workflows by id (those that exist).
SELECT * FROM workflows WHERE workflow_id = ANY(%(workflow_ids)b::text[])

-- get_workflow_by_dedup --
-- The active workflow holding a dedup id on a queue (to name it in the error).
SELECT workflow_id FROM workflows
WHERE queue_name = %(queue_name)s AND dedup_id = %(dedup_id)s
    AND status IN ('ENQUEUED', 'PENDING')

-- list_workflows --
-- Workflows matching the filters (NULL: any), newest first; created_* bounds are inclusive.
SELECT *, seq AS cursor_seq FROM workflows
WHERE (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s::text[]))
    AND (%(name)s::text IS NULL OR name = %(name)s::text)
    AND (%(queue_name)s::text IS NULL OR queue_name = %(queue_name)s::text)
    AND (%(executor_id)s::text IS NULL OR executor_id = %(executor_id)s::text)
    AND (%(parent_workflow_id)s::text IS NULL OR parent_workflow_id = %(parent_workflow_id)s::text)
    AND (%(created_after_ms)s::bigint IS NULL OR created_at >= %(created_after_ms)s::bigint)
    AND (%(created_before_ms)s::bigint IS NULL OR created_at <= %(created_before_ms)s::bigint)
    AND (%(workflow_ids)s::text[] IS NULL OR workflow_id = ANY(%(workflow_ids)s::text[]))
    AND (%(app_version)s::text IS NULL OR app_version = %(app_version)s::text)
    AND (%(id_prefix)s::text IS NULL OR starts_with(workflow_id, %(id_prefix)s::text))
    AND (%(attributes)s::jsonb IS NULL OR workflow_id IN (
        SELECT a.workflow_id FROM workflow_attributes AS a
        JOIN jsonb_each_text(%(attributes)s::jsonb) AS wanted
            ON a.name = wanted.key AND a.value = wanted.value
        GROUP BY a.workflow_id
        HAVING count(*) = (SELECT count(*) FROM jsonb_each_text(%(attributes)s::jsonb))
    ))
    AND (%(cursor_created)s::bigint IS NULL
        OR (created_at, seq) < (%(cursor_created)s::bigint, %(cursor_seq)s::bigint))
    AND (NOT %(stranded)s::boolean OR (
        status IN ('PENDING', 'COMPENSATING') AND NOT EXISTS (
        SELECT 1 FROM workers
        WHERE workers.app_version = workflows.app_version AND lease_expires_at > now_ms()
    )
    ))
ORDER BY created_at DESC, seq DESC
LIMIT %(limit)s OFFSET %(offset)s

-- list_workflows_ascending --
-- Same filters as list_workflows, oldest first.
SELECT *, seq AS cursor_seq FROM workflows
WHERE (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s::text[]))
    AND (%(name)s::text IS NULL OR name = %(name)s::text)
    AND (%(queue_name)s::text IS NULL OR queue_name = %(queue_name)s::text)
    AND (%(executor_id)s::text IS NULL OR executor_id = %(executor_id)s::text)
    AND (%(parent_workflow_id)s::text IS NULL OR parent_workflow_id = %(parent_workflow_id)s::text)
    AND (%(created_after_ms)s::bigint IS NULL OR created_at >= %(created_after_ms)s::bigint)
    AND (%(created_before_ms)s::bigint IS NULL OR created_at <= %(created_before_ms)s::bigint)
    AND (%(workflow_ids)s::text[] IS NULL OR workflow_id = ANY(%(workflow_ids)s::text[]))
    AND (%(app_version)s::text IS NULL OR app_version = %(app_version)s::text)
    AND (%(id_prefix)s::text IS NULL OR starts_with(workflow_id, %(id_prefix)s::text))
    AND (%(attributes)s::jsonb IS NULL OR workflow_id IN (
        SELECT a.workflow_id FROM workflow_attributes AS a
        JOIN jsonb_each_text(%(attributes)s::jsonb) AS wanted
            ON a.name = wanted.key AND a.value = wanted.value
        GROUP BY a.workflow_id
        HAVING count(*) = (SELECT count(*) FROM jsonb_each_text(%(attributes)s::jsonb))
    ))
    AND (%(cursor_created)s::bigint IS NULL
        OR (created_at, seq) > (%(cursor_created)s::bigint, %(cursor_seq)s::bigint))
    AND (NOT %(stranded)s::boolean OR (
        status IN ('PENDING', 'COMPENSATING') AND NOT EXISTS (
        SELECT 1 FROM workers
        WHERE workers.app_version = workflows.app_version AND lease_expires_at > now_ms()
    )
    ))
ORDER BY created_at ASC, seq ASC
LIMIT %(limit)s OFFSET %(offset)s

-- count_workflows --
-- How many workflows match the filters (those of list_workflows; no cursor), per status.
SELECT status, count(*) AS n FROM workflows
WHERE (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s::text[]))
    AND (%(name)s::text IS NULL OR name = %(name)s::text)
    AND (%(queue_name)s::text IS NULL OR queue_name = %(queue_name)s::text)
    AND (%(executor_id)s::text IS NULL OR executor_id = %(executor_id)s::text)
    AND (%(parent_workflow_id)s::text IS NULL OR parent_workflow_id = %(parent_workflow_id)s::text)
    AND (%(created_after_ms)s::bigint IS NULL OR created_at >= %(created_after_ms)s::bigint)
    AND (%(created_before_ms)s::bigint IS NULL OR created_at <= %(created_before_ms)s::bigint)
    AND (%(workflow_ids)s::text[] IS NULL OR workflow_id = ANY(%(workflow_ids)s::text[]))
    AND (%(app_version)s::text IS NULL OR app_version = %(app_version)s::text)
    AND (%(id_prefix)s::text IS NULL OR starts_with(workflow_id, %(id_prefix)s::text))
    AND (%(attributes)s::jsonb IS NULL OR workflow_id IN (
        SELECT a.workflow_id FROM workflow_attributes AS a
        JOIN jsonb_each_text(%(attributes)s::jsonb) AS wanted
            ON a.name = wanted.key AND a.value = wanted.value
        GROUP BY a.workflow_id
        HAVING count(*) = (SELECT count(*) FROM jsonb_each_text(%(attributes)s::jsonb))
    ))
    AND (NOT %(stranded)s::boolean OR (
        status IN ('PENDING', 'COMPENSATING') AND NOT EXISTS (
        SELECT 1 FROM workers
        WHERE workers.app_version = workflows.app_version AND lease_expires_at > now_ms()
    )
    ))
GROUP BY status

-- finish_workflow --
-- Write a final status with its output or error, only while the workflow is running (and, from a run, only while its epoch owns it).
UPDATE workflows
SET status = %(status)s, output = %(output)s, error = %(error)s,
    finished_at = clock.now, updated_at = clock.now
FROM (SELECT now_ms() AS now) AS clock
WHERE workflow_id = %(workflow_id)s AND status IN ('PENDING', 'COMPENSATING')
    AND (%(epoch)s::bigint IS NULL OR owner_epoch = %(epoch)s::bigint)

-- finish_pending_workflow --
-- Write SUCCESS's output only while PENDING: with the workflow's last step, in its transaction.
UPDATE workflows
SET status = %(status)s, output = %(output)s, error = NULL,
    finished_at = clock.now, updated_at = clock.now
FROM (SELECT now_ms() AS now) AS clock
WHERE workflow_id = %(workflow_id)s AND status = 'PENDING'
    AND (%(epoch)s::bigint IS NULL OR owner_epoch = %(epoch)s::bigint)

-- transition_workflow --
-- Move to a status from one of the given ones (from a run: only while its epoch owns it); entering PENDING starts the deadline clock.
UPDATE workflows
SET status = %(to_status)s,
    error = COALESCE(%(error)s::text, error),
    finished_at = CASE WHEN %(terminal)s::boolean THEN clock.now END,
    started_at = CASE WHEN %(to_status)s::text = 'PENDING'
        THEN COALESCE(started_at, clock.now) ELSE started_at END,
    deadline_ms = CASE WHEN %(to_status)s::text = 'PENDING' AND deadline_ms IS NULL
        THEN clock.now + timeout_ms ELSE deadline_ms END,
    updated_at = clock.now
FROM (SELECT now_ms() AS now) AS clock
WHERE workflow_id = %(workflow_id)s AND status = ANY(%(from_statuses)s::text[])
    AND (%(epoch)s::bigint IS NULL OR owner_epoch = %(epoch)s::bigint)
RETURNING workflows.*

-- resume_workflow --
-- Run a workflow again on an executor (PENDING, or COMPENSATING to retry a rollback, which
-- keeps the error that triggered it): clear its outcome, attempts and deadline; a new epoch.
UPDATE workflows
SET status = %(to_status)s, executor_id = %(executor_id)s, app_version = %(app_version)s,
    owner_epoch = owner_epoch + 1,
    output = NULL, finished_at = NULL, recovery_attempts = 0,
    error = CASE WHEN %(to_status)s = 'COMPENSATING' THEN error END,
    rollback_after_step = CASE WHEN %(to_status)s = 'COMPENSATING' THEN rollback_after_step END,
    deadline_ms = clock.now + timeout_ms,
    started_at = COALESCE(started_at, clock.now), updated_at = clock.now
FROM (SELECT now_ms() AS now) AS clock
WHERE workflow_id = %(workflow_id)s AND status = ANY(%(from_statuses)s::text[])
RETURNING workflows.*

-- claim_for_recovery --
-- Count one more recovery attempt on every running workflow of an executor (and version); each run of them gets a new epoch.
UPDATE workflows
SET recovery_attempts = recovery_attempts + 1, owner_epoch = owner_epoch + 1, updated_at = now_ms()
WHERE executor_id = %(executor_id)s AND status IN ('PENDING', 'COMPENSATING')
    AND (%(app_version)s::text IS NULL OR app_version = %(app_version)s::text)
RETURNING *

-- claim_orphans --
-- This executor's unfinished workflows that no run of it holds, untouched for settled_ms: claimed by a statement whose commit was acknowledged to nobody (the connection died in it, then it was retried); each gets a new epoch, to be run here.
UPDATE workflows
SET owner_epoch = owner_epoch + 1, updated_at = now_ms()
WHERE workflow_id IN (
    SELECT workflow_id FROM workflows
    WHERE status IN ('PENDING', 'COMPENSATING') AND executor_id = %(executor_id)s::text
      AND updated_at < now_ms() - %(settled_ms)s::bigint
      AND NOT (workflow_id = ANY(%(running)s::text[]))
      AND (%(app_version)s::text IS NULL OR app_version = %(app_version)s::text)
    ORDER BY created_at
    LIMIT %(limit)s::integer
    FOR UPDATE SKIP LOCKED
)
RETURNING *

-- begin_rollback --
-- A run's rollback begins: remember the step number its compensations follow (kept if already set), only while COMPENSATING in the run's epoch; returns the number in effect.
UPDATE workflows
SET rollback_after_step = COALESCE(rollback_after_step, %(after_step)s::integer), updated_at = now_ms()
WHERE workflow_id = %(workflow_id)s::text AND status = 'COMPENSATING' AND owner_epoch = %(epoch)s::bigint
RETURNING rollback_after_step

-- load_steps --
-- A workflow's recorded steps in order.
SELECT * FROM steps WHERE workflow_id = %(workflow_id)s ORDER BY step_number

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
    %(workflow_id)s::text, %(step_number)s::integer, %(name)s::text, %(kind)s::text,
    %(output)s::text, %(error)s::text, %(attempts)s::integer, %(child_workflow_id)s::text,
    %(compensation)s::text, %(compensation_input)s::text, %(compensates_step)s::integer,
    %(started_at)s::bigint, COALESCE(%(finished_at)s::bigint, now_ms()), %(epoch)s::bigint,
    %(args_hash)s::text
ON CONFLICT DO NOTHING
RETURNING (SELECT status FROM workflows WHERE workflows.workflow_id = steps.workflow_id) AS status

-- delete_steps --
-- Forget a workflow's steps from a number on (resume retries failed steps at the end).
DELETE FROM steps WHERE workflow_id = %(workflow_id)s AND step_number >= %(from_step)s

-- copy_steps --
-- Copy a workflow's steps numbered below a bound to another workflow (fork), in its epoch.
INSERT INTO steps (
    workflow_id, step_number, name, kind, output, error, attempts, child_workflow_id,
    compensation, compensation_input, compensates_step, started_at, finished_at, epoch,
    args_hash
)
SELECT
    %(workflow_id)s::text, step_number, name, kind, output, error, attempts, child_workflow_id,
    compensation, compensation_input, compensates_step, started_at, finished_at,
    (SELECT owner_epoch FROM workflows WHERE workflow_id = %(workflow_id)s::text), args_hash
FROM steps
WHERE workflow_id = %(source_id)s::text AND step_number < %(before_step)s::integer
ORDER BY seq

-- insert_message --
-- Add a message unless its idempotency key was already used for that destination.
INSERT INTO messages (destination_id, topic, payload, idempotency_key, created_at)
VALUES (%(destination_id)s, %(topic)s, %(payload)s, %(idempotency_key)s, now_ms())
ON CONFLICT DO NOTHING

-- message_key_used --
-- Whether a message with this idempotency key was already sent to this workflow (a redelivery).
SELECT 1 AS used FROM messages
WHERE destination_id = %(destination_id)s::text AND idempotency_key = %(idempotency_key)s::text

-- message_waiting --
-- Whether any unconsumed message waits on a workflow's topic (a delivery to its parked recv must not pass it).
SELECT 1 AS waiting FROM messages
WHERE destination_id = %(destination_id)s::text AND topic = %(topic)s::text AND NOT consumed
LIMIT 1

-- insert_message_consumed --
-- Add a message already consumed by the recv step recorded with it (a delivery to a recv parked in the sender's process), unless its idempotency key was used.
INSERT INTO messages (destination_id, topic, payload, idempotency_key, created_at, consumed)
VALUES (%(destination_id)s, %(topic)s, %(payload)s, %(idempotency_key)s, now_ms(), true)
ON CONFLICT DO NOTHING

-- consume_message --
-- Take the oldest unconsumed message of a topic, or none (busy) while another transaction holds it: never a newer one first, never a wait on its lock.
WITH oldest AS (
    SELECT message_id FROM messages
    WHERE destination_id = %(workflow_id)s AND topic = %(topic)s AND NOT consumed
    ORDER BY message_id
    LIMIT 1
), taken AS (
    UPDATE messages SET consumed = true
    WHERE message_id = (
        SELECT message_id FROM messages
        WHERE destination_id = %(workflow_id)s AND topic = %(topic)s
          AND message_id = (SELECT message_id FROM oldest) AND NOT consumed
        FOR UPDATE SKIP LOCKED
    )
    RETURNING payload
)
SELECT
    (SELECT payload FROM taken) AS payload,
    EXISTS (SELECT 1 FROM oldest) AND NOT EXISTS (SELECT 1 FROM taken) AS busy

-- set_event --
-- Publish (or overwrite) an event's value.
INSERT INTO events (workflow_id, key, value, updated_at)
VALUES (%(workflow_id)s, %(key)s, %(value)s, now_ms())
ON CONFLICT (workflow_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at

-- get_event --
-- One event's value.
SELECT value FROM events WHERE workflow_id = %(workflow_id)s AND key = %(key)s

-- get_events --
-- Every event of a workflow.
SELECT key, value FROM events WHERE workflow_id = %(workflow_id)s ORDER BY key

-- append_stream --
-- Append at the next position unless the stream is closed (then no row is inserted).
INSERT INTO streams (workflow_id, key, position, value, closed, created_at)
SELECT
    %(workflow_id)s::text, %(key)s::text,
    COALESCE((
        SELECT max(position) + 1 FROM streams
        WHERE workflow_id = %(workflow_id)s::text AND key = %(key)s::text
    ), 0),
    %(value)s::text, %(closed)s::boolean, now_ms()
WHERE NOT EXISTS (
    SELECT 1 FROM streams
    WHERE workflow_id = %(workflow_id)s::text AND key = %(key)s::text AND closed
)

-- read_stream --
-- A stream's entries from a position on.
SELECT position, value, closed FROM streams
WHERE workflow_id = %(workflow_id)s AND key = %(key)s AND position >= %(from_position)s
ORDER BY position

-- send_message_combined --
-- send in one round trip (PostgreSQL only): record the sender's step (when given; fenced like every step) and add the message unless its key was used, both or neither; a redelivery still records the step.
WITH destination AS (
    SELECT workflow_id, status FROM workflows WHERE workflow_id = %(destination_id)s::text
), used AS (
    SELECT 1 FROM messages
    WHERE destination_id = %(destination_id)s::text
      AND idempotency_key = %(idempotency_key)s::text
), step AS (
    INSERT INTO steps (
        workflow_id, step_number, name, kind, output, attempts, started_at, finished_at, epoch
    )
    SELECT
        %(workflow_id)s::text, %(step_number)s::integer, %(name)s::text, %(kind)s::text,
        %(output)s::text, 1, %(started_at)s::bigint, now_ms(), %(epoch)s::bigint
    FROM destination
    WHERE %(step_number)s::integer IS NOT NULL
      AND (
          status NOT IN (
              'SUCCESS', 'ERROR', 'CANCELLED', 'COMPENSATED', 'COMPENSATION_FAILED',
              'MAX_RECOVERY_ATTEMPTS_EXCEEDED'
          )
          OR EXISTS (SELECT 1 FROM used)
      )
    ON CONFLICT DO NOTHING
    RETURNING step_number
), inserted AS (
    INSERT INTO messages (destination_id, topic, payload, idempotency_key, created_at)
    SELECT workflow_id, %(topic)s::text, %(payload)s::text, %(idempotency_key)s::text, now_ms()
    FROM destination
    WHERE status NOT IN (
        'SUCCESS', 'ERROR', 'CANCELLED', 'COMPENSATED', 'COMPENSATION_FAILED',
        'MAX_RECOVERY_ATTEMPTS_EXCEEDED'
    )
    AND NOT EXISTS (SELECT 1 FROM used)
    AND (%(step_number)s::integer IS NULL OR EXISTS (SELECT 1 FROM step))
    ON CONFLICT DO NOTHING
    RETURNING message_id
)
SELECT
    (SELECT status FROM destination) AS status,
    (%(step_number)s::integer IS NOT NULL AND NOT EXISTS (SELECT 1 FROM step)) AS refused,
    EXISTS (SELECT 1 FROM used) AS duplicate,
    (SELECT count(*) FROM inserted) AS inserted

-- recv_message_combined --
-- recv in one round trip (PostgreSQL only): record the oldest waiting message as the step's output and consume it, both or neither (a step refused by its number or its fence consumes nothing); busy while another transaction holds that message (nothing taken: never a newer one first, never a wait on its lock). With no message at all, the "otherwise" step (recv's deadline, as it parks) is recorded instead when one is given.
WITH oldest AS (
    SELECT message_id FROM messages
    WHERE destination_id = %(workflow_id)s::text AND topic = %(topic)s::text AND NOT consumed
    ORDER BY message_id
    LIMIT 1
), next AS (  -- the whole key: a lookup, whichever index the plan takes
    SELECT message_id, payload FROM messages
    WHERE destination_id = %(workflow_id)s::text AND topic = %(topic)s::text
      AND message_id = (SELECT message_id FROM oldest) AND NOT consumed
    FOR UPDATE SKIP LOCKED
), step AS (
    INSERT INTO steps (
        workflow_id, step_number, name, kind, output, attempts, started_at, finished_at, epoch
    )
    SELECT
        %(workflow_id)s::text, %(step_number)s::integer, %(name)s::text, %(kind)s::text,
        next.payload, 1, %(started_at)s::bigint, now_ms(), %(epoch)s::bigint
    FROM next
    ON CONFLICT DO NOTHING
    RETURNING output
), consumed AS (
    UPDATE messages SET consumed = true
    FROM next
    WHERE messages.message_id = next.message_id AND EXISTS (SELECT 1 FROM step)
    RETURNING messages.payload
), otherwise AS (
    INSERT INTO steps (
        workflow_id, step_number, name, kind, output, attempts, started_at, finished_at, epoch
    )
    SELECT
        %(workflow_id)s::text, %(step_number)s::integer, %(otherwise_name)s::text,
        %(otherwise_kind)s::text, %(otherwise_output)s::text, 1,
        %(otherwise_started_at)s::bigint, now_ms(), %(epoch)s::bigint
    WHERE %(otherwise_name)s::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM oldest)
    ON CONFLICT DO NOTHING
    RETURNING workflow_id
)
SELECT
    (SELECT payload FROM next) AS waiting,
    (SELECT payload FROM consumed) AS payload,
    EXISTS (SELECT 1 FROM oldest) AND NOT EXISTS (SELECT 1 FROM next) AS busy,
    EXISTS (SELECT 1 FROM otherwise) AS otherwise

-- set_event_combined --
-- set_event in one round trip (PostgreSQL only): record the step and upsert the event, both or neither (a step refused by its number or its fence publishes nothing).
WITH step AS (
    INSERT INTO steps (
        workflow_id, step_number, name, kind, output, attempts, started_at, finished_at, epoch
    )
    SELECT
        %(workflow_id)s::text, %(step_number)s::integer, %(name)s::text, %(kind)s::text,
        %(output)s::text, 1, %(started_at)s::bigint, now_ms(), %(epoch)s::bigint
    ON CONFLICT DO NOTHING
    RETURNING workflow_id
), event AS (
    INSERT INTO events (workflow_id, key, value, updated_at)
    SELECT workflow_id, %(key)s::text, %(value)s::text, now_ms()
    FROM step
    ON CONFLICT (workflow_id, key) DO UPDATE
        SET value = excluded.value, updated_at = excluded.updated_at
    RETURNING key
)
SELECT (SELECT count(*) FROM event) AS upserted, (SELECT count(*) FROM step) AS recorded

-- lock_queue --
-- Serialize dequeues of one queue (until commit), so concurrency limits hold across workers.
SELECT pg_advisory_xact_lock(hashtext(current_schema() || ':queue:' || %(queue_name)s::text))

-- queue_counts --
-- A queue's (or one partition's) running workflows, this executor's share, and starts in the rate window.
SELECT
    count(*) FILTER (WHERE status IN ('PENDING', 'COMPENSATING')) AS running,
    count(*) FILTER (
        WHERE status IN ('PENDING', 'COMPENSATING') AND executor_id = %(executor_id)s::text
    ) AS mine,
    count(*) FILTER (WHERE started_at >= now_ms() - %(window_ms)s::bigint) AS recent,
    min(started_at) FILTER (WHERE started_at >= now_ms() - %(window_ms)s::bigint) AS oldest_recent
FROM workflows
WHERE queue_name = %(queue_name)s::text
  AND (%(partition_key)s::text IS NULL OR partition_key = %(partition_key)s::text)
  AND (status IN ('PENDING', 'COMPENSATING') OR started_at >= now_ms() - %(window_ms)s::bigint)

-- queue_partitions --
-- The partition keys that have workflows waiting on a queue.
SELECT DISTINCT partition_key FROM workflows
WHERE queue_name = %(queue_name)s::text AND status = 'ENQUEUED'
LIMIT 1000

-- claim_queued --
-- Start up to n due workflows of a queue on an executor (with worker_concurrency: no more than it minus what the executor runs of the queue): lowest priority number first (when the queue uses priorities), then oldest; next_due: when the earliest delayed one becomes due.
UPDATE workflows
SET status = 'PENDING', executor_id = %(executor_id)s::text, app_version = %(app_version)s::text,
    owner_epoch = owner_epoch + 1, started_at = clock.now, updated_at = clock.now, deadline_ms = clock.now + timeout_ms
FROM (SELECT now_ms() AS now) AS clock
WHERE workflow_id IN (
    SELECT workflow_id FROM workflows
    WHERE queue_name = %(queue_name)s::text AND status = 'ENQUEUED'
      AND (not_before_ms IS NULL OR not_before_ms <= now_ms())
      AND (%(partition_key)s::text IS NULL OR partition_key = %(partition_key)s::text)
    ORDER BY CASE WHEN %(use_priority)s::boolean THEN priority ELSE 0 END, seq
    LIMIT CASE WHEN %(worker_concurrency)s::integer IS NULL THEN %(n)s::integer
        ELSE greatest(0, least(%(n)s::integer, %(worker_concurrency)s::integer - (
            SELECT count(*) FROM workflows AS mine
            WHERE mine.queue_name = %(queue_name)s::text
              AND mine.status IN ('PENDING', 'COMPENSATING')
              AND mine.executor_id = %(executor_id)s::text
              AND (%(partition_key)s::text IS NULL OR mine.partition_key = %(partition_key)s::text)
        )::integer)) END
    FOR UPDATE SKIP LOCKED
)
RETURNING workflows.*, (
    SELECT min(delayed.not_before_ms) FROM workflows AS delayed
    WHERE delayed.queue_name = %(queue_name)s::text AND delayed.status = 'ENQUEUED'
      AND delayed.not_before_ms > now_ms()
) AS next_due

-- next_delayed --
-- When the earliest delayed workflow of a queue becomes due.
SELECT min(not_before_ms) AS due FROM workflows
WHERE queue_name = %(queue_name)s::text AND status = 'ENQUEUED' AND not_before_ms > now_ms()

-- queue_stats --
-- Depth, running count and recent starts of every queue (or one).
SELECT
    queue_name,
    count(*) FILTER (WHERE status = 'ENQUEUED') AS depth,
    count(*) FILTER (WHERE status IN ('PENDING', 'COMPENSATING')) AS running,
    count(*) FILTER (WHERE started_at >= now_ms() - 60000) AS started_last_minute
FROM workflows
WHERE queue_name IS NOT NULL AND (%(queue_name)s::text IS NULL OR queue_name = %(queue_name)s::text)
  AND (status IN ('ENQUEUED', 'PENDING', 'COMPENSATING') OR started_at >= now_ms() - 60000)
GROUP BY queue_name
ORDER BY queue_name

-- register_worker --
-- Register (or re-register) an executor with a fresh lease.
INSERT INTO workers (executor_id, app_version, host, pid, started_at, heartbeat_at, lease_expires_at)
VALUES (
    %(executor_id)s::text, %(app_version)s::text, %(host)s::text, %(pid)s::integer,
    now_ms(), now_ms(), now_ms() + %(lease_ms)s::bigint
)
ON CONFLICT (executor_id) DO UPDATE
    SET app_version = excluded.app_version, host = excluded.host, pid = excluded.pid,
        started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at,
        lease_expires_at = excluded.lease_expires_at
RETURNING lease_expires_at

-- renew_lease --
-- Heartbeat: extend a lease that has not expired (an expired one was lost: no row).
UPDATE workers SET heartbeat_at = now_ms(), lease_expires_at = now_ms() + %(lease_ms)s::bigint
WHERE executor_id = %(executor_id)s::text AND lease_expires_at > now_ms()
RETURNING lease_expires_at

-- release_worker --
-- A worker shutting down gives up its lease at once, so others take its work over now.
UPDATE workers SET lease_expires_at = now_ms() - 1 WHERE executor_id = %(executor_id)s::text

-- take_over --
-- Claim unfinished workflows of dead workers (expired leases), and workflows nobody runs (a re-queued workflow cancelled with rollback, a workflow moved to this version), of the same app version; each row goes to exactly one taker. Queued PENDING ones go back to their queue (ENQUEUED, steps kept) so its limits apply.
UPDATE workflows
SET executor_id = CASE WHEN queue_name IS NOT NULL AND status = 'PENDING' THEN NULL ELSE %(executor_id)s::text END,
    status = CASE WHEN queue_name IS NOT NULL AND status = 'PENDING' THEN 'ENQUEUED' ELSE status END,
    recovery_attempts = recovery_attempts + 1,
    owner_epoch = owner_epoch + 1,
    updated_at = now_ms()
WHERE workflow_id IN (
    SELECT workflow_id FROM workflows
    WHERE status IN ('PENDING', 'COMPENSATING')
      AND (
          executor_id IN (
              SELECT executor_id FROM workers
              WHERE lease_expires_at < now_ms() AND executor_id <> %(executor_id)s::text
          )
          OR (executor_id IS NULL AND status IN ('PENDING', 'COMPENSATING'))
      )
      AND (%(app_version)s::text IS NULL OR app_version = %(app_version)s::text)
    ORDER BY created_at
    LIMIT %(limit)s::integer
    FOR UPDATE SKIP LOCKED
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
WHERE executor_id = %(executor_id)s::text AND workflow_id = ANY(%(workflow_ids)s::text[])
  AND status IN ('PENDING', 'COMPENSATING')

-- list_workers --
-- Registered workers and their leases.
SELECT *, lease_expires_at > now_ms() AS alive FROM workers ORDER BY started_at

-- upsert_schedule --
-- Create a schedule, or replace its definition (keeping last_tick_ms and paused). updated_at
-- moves only when the definition changes (workers tick a changed schedule from then on), not
-- when every worker's launch saves the same declared schedule again.
INSERT INTO schedules (name, workflow_name, cron, input, paused, catch_up, declared, created_at, updated_at)
VALUES (
    %(name)s::text, %(workflow_name)s::text, %(cron)s::text, %(input)s::text,
    %(paused)s::boolean, %(catch_up)s::boolean, %(declared)s::boolean, now_ms(), now_ms()
)
ON CONFLICT (name) DO UPDATE
    SET workflow_name = excluded.workflow_name, cron = excluded.cron, input = excluded.input,
        catch_up = excluded.catch_up, declared = excluded.declared,
        updated_at = CASE
            WHEN (schedules.workflow_name, schedules.cron, schedules.input, schedules.catch_up,
                  schedules.declared)
                IS DISTINCT FROM (excluded.workflow_name, excluded.cron, excluded.input,
                                  excluded.catch_up, excluded.declared)
            THEN excluded.updated_at ELSE schedules.updated_at END
RETURNING *

-- insert_schedule --
-- Create a schedule unless the name is taken (no row then).
INSERT INTO schedules (name, workflow_name, cron, input, paused, catch_up, declared, created_at, updated_at)
VALUES (
    %(name)s::text, %(workflow_name)s::text, %(cron)s::text, %(input)s::text,
    %(paused)s::boolean, %(catch_up)s::boolean, %(declared)s::boolean, now_ms(), now_ms()
)
ON CONFLICT (name) DO NOTHING
RETURNING *

-- list_schedules --
-- Every schedule by name.
SELECT * FROM schedules ORDER BY name

-- set_schedule_paused --
-- Pause or resume a schedule.
UPDATE schedules SET paused = %(paused)s::boolean, updated_at = now_ms()
WHERE name = %(name)s::text
RETURNING *

-- delete_schedule --
-- Delete a schedule (its past runs stay).
DELETE FROM schedules WHERE name = %(name)s::text

-- mark_schedule_tick --
-- Remember the latest tick a schedule ran (for catch-up after downtime).
UPDATE schedules SET last_tick_ms = GREATEST(COALESCE(last_tick_ms, 0), %(tick_ms)s::bigint)
WHERE name = %(name)s::text

-- record_steps_batch --
-- Group commit (PostgreSQL only): record many workflows' steps in one statement; per input ordinal, the workflow's status and whether the step was inserted.
WITH input AS (
    SELECT * FROM unnest(
        %(workflow_ids)b::text[], %(step_numbers)b::integer[], %(names)b::text[],
        %(kinds)b::text[], %(outputs)b::text[], %(errors)b::text[], %(attempts)b::integer[],
        %(child_workflow_ids)b::text[], %(compensations)b::text[],
        %(compensation_inputs)b::text[], %(compensates_steps)b::integer[],
        %(started_ats)b::bigint[], %(finished_ats)b::bigint[], %(epochs)b::bigint[],
        %(args_hashes)b::text[]
    ) WITH ORDINALITY AS t(
        workflow_id, step_number, name, kind, output, error, attempts, child_workflow_id,
        compensation, compensation_input, compensates_step, started_at, finished_at, epoch,
        args_hash, ordinal
    )
), firsts AS (  -- one write per step number: a later duplicate in the batch is refused
    SELECT DISTINCT ON (workflow_id, step_number) * FROM input
    ORDER BY workflow_id, step_number, ordinal
), inserted AS (
    INSERT INTO steps (
        workflow_id, step_number, name, kind, output, error, attempts, child_workflow_id,
        compensation, compensation_input, compensates_step, started_at, finished_at, epoch,
        args_hash
    )
    SELECT
        firsts.workflow_id, firsts.step_number, firsts.name, firsts.kind, firsts.output,
        firsts.error, firsts.attempts, firsts.child_workflow_id, firsts.compensation,
        firsts.compensation_input, firsts.compensates_step, firsts.started_at,
        COALESCE(firsts.finished_at, now_ms()), firsts.epoch, firsts.args_hash
    FROM firsts CROSS JOIN LATERAL (  -- each workflow by its key, whatever the plan: a join
        SELECT 1 FROM workflows  -- planned while the table was small read all of it, on
        WHERE workflows.workflow_id = firsts.workflow_id  -- every statement (10-16 ms at
        LIMIT 1  -- 60,000 workflows)
    ) AS known
    ORDER BY firsts.ordinal
    ON CONFLICT DO NOTHING
    RETURNING workflow_id, step_number
)
SELECT
    input.ordinal,
    workflows.status,
    EXISTS (
        SELECT 1 FROM inserted JOIN firsts USING (workflow_id, step_number)
        WHERE firsts.ordinal = input.ordinal
    ) AS inserted
FROM input LEFT JOIN LATERAL (
    SELECT status FROM workflows WHERE workflows.workflow_id = input.workflow_id LIMIT 1
) AS workflows ON true
ORDER BY input.ordinal

-- finish_workflows_batch --
-- Group commit (PostgreSQL only): write many final statuses in one statement, each only while its workflow runs (and its epoch, when given, owns it). Planned at each execution (PostgresDriver.all): kept, a plan made while the table was small read every running workflow for each statement.
WITH input AS (
    SELECT * FROM unnest(
        %(workflow_ids)b::text[], %(statuses)b::text[], %(outputs)b::text[], %(errors)b::text[],
        %(epochs)b::bigint[]
    ) AS t(workflow_id, status, output, error, epoch)
)
UPDATE workflows
SET status = input.status, output = input.output, error = input.error,
    finished_at = now_ms(), updated_at = now_ms()
FROM input
WHERE workflows.workflow_id = input.workflow_id
  AND workflows.workflow_id = ANY (%(workflow_ids)b::text[])  -- the keys, for the planner
  AND workflows.status || '' IN ('PENDING', 'COMPENSATING')  -- not by the status index: with
  -- stale statistics the plan read every running workflow's entry in it (a wake storm)
  AND (input.epoch IS NULL OR workflows.owner_epoch = input.epoch)
RETURNING workflows.workflow_id

-- insert_workflows_batch --
-- Group commit (PostgreSQL only): insert many new workflows in one statement, skipping taken ids and active dedup ids; returns the rows inserted.
WITH clock AS (SELECT now_ms() AS now), input AS (
    SELECT * FROM unnest(
        %(workflow_ids)b::text[], %(names)b::text[], %(statuses)b::text[], %(inputs)b::text[],
        %(executor_ids)b::text[], %(app_versions)b::text[], %(queue_names)b::text[],
        %(priorities)b::integer[], %(dedup_ids)b::text[], %(partition_keys)b::text[],
        %(parent_workflow_ids)b::text[], %(max_recovery_attempts)b::integer[],
        %(timeouts_ms)b::bigint[], %(delays_ms)b::bigint[], %(trace_contexts)b::text[]
    ) WITH ORDINALITY AS t(
        workflow_id, name, status, input, executor_id, app_version, queue_name, priority,
        dedup_id, partition_key, parent_workflow_id, max_recovery_attempts, timeout_ms,
        delay_ms, trace_context, ordinal
    )
)
INSERT INTO workflows (
    workflow_id, name, status, input, executor_id, app_version, queue_name, priority, dedup_id,
    partition_key, parent_workflow_id, max_recovery_attempts, timeout_ms, deadline_ms,
    not_before_ms, trace_context, created_at, updated_at, started_at
)
SELECT
    input.workflow_id, input.name, input.status, input.input, input.executor_id,
    input.app_version, input.queue_name, input.priority, input.dedup_id, input.partition_key,
    input.parent_workflow_id, input.max_recovery_attempts, input.timeout_ms,
    CASE WHEN input.status = 'PENDING' THEN clock.now + input.timeout_ms END,
    clock.now + input.delay_ms,
    input.trace_context, clock.now, clock.now,
    CASE WHEN input.status = 'PENDING' THEN clock.now END
FROM input CROSS JOIN clock
ORDER BY input.ordinal
ON CONFLICT DO NOTHING
RETURNING *

-- send_messages_batch --
-- Group commit (PostgreSQL only): many sends from outside workflows in one statement; per input ordinal, the destination's status, whether its key was used before, and whether it was inserted.
WITH input AS (
    SELECT * FROM unnest(
        %(destination_ids)b::text[], %(topics)b::text[], %(payloads)b::text[],
        %(idempotency_keys)b::text[]
    ) WITH ORDINALITY AS t(destination_id, topic, payload, idempotency_key, ordinal)
), inserted AS (
    INSERT INTO messages (destination_id, topic, payload, idempotency_key, created_at)
    SELECT input.destination_id, input.topic, input.payload, input.idempotency_key, now_ms()
    FROM input CROSS JOIN LATERAL (  -- by key, whatever the plan (see record_steps_batch)
        SELECT status FROM workflows WHERE workflows.workflow_id = input.destination_id LIMIT 1
    ) AS workflows
    WHERE workflows.status NOT IN (
        'SUCCESS', 'ERROR', 'CANCELLED', 'COMPENSATED', 'COMPENSATION_FAILED',
        'MAX_RECOVERY_ATTEMPTS_EXCEEDED'
    )
    ORDER BY input.ordinal
    ON CONFLICT DO NOTHING
    RETURNING destination_id, idempotency_key
)
SELECT
    input.ordinal,
    workflows.status,
    used.destination_id IS NOT NULL AS duplicate,
    (SELECT count(*) FROM inserted
     WHERE inserted.destination_id = input.destination_id
       AND inserted.idempotency_key IS NOT DISTINCT FROM input.idempotency_key) AS inserted
FROM input
LEFT JOIN LATERAL (
    SELECT status FROM workflows WHERE workflows.workflow_id = input.destination_id LIMIT 1
) AS workflows ON true
LEFT JOIN LATERAL (  -- a probe of the key's index per send: as an EXISTS, a plan made while
    SELECT destination_id FROM messages  -- the table was small hashed the whole table on
    WHERE messages.destination_id = input.destination_id  -- every later statement (23 ms a
      AND messages.idempotency_key = input.idempotency_key  -- send at 100,000 messages)
    LIMIT 1
) AS used ON true
ORDER BY input.ordinal

-- deliver_message_combined --
-- One delivery to a recv parked in the sender's process (PostgreSQL only; see deliver_messages_batch, of which this is the single-row form): the message inserted consumed with the recv's step, or inserted for a recv to take.
WITH target AS (
    SELECT
        workflows.status,
        EXISTS (
            SELECT 1 FROM messages
            WHERE destination_id = %(destination_id)s::text
              AND idempotency_key = %(idempotency_key)s::text
        ) AS duplicate,
        EXISTS (
            SELECT 1 FROM messages
            WHERE destination_id = %(destination_id)s::text AND topic = %(topic)s::text
              AND NOT consumed
        ) AS queued,
        workflows.status NOT IN (
            'SUCCESS', 'ERROR', 'CANCELLED', 'COMPENSATED', 'COMPENSATION_FAILED',
            'MAX_RECOVERY_ATTEMPTS_EXCEEDED'
        ) AS open
    FROM workflows WHERE workflow_id = %(destination_id)s::text
), step AS (
    INSERT INTO steps (
        workflow_id, step_number, name, kind, output, attempts, started_at, finished_at, epoch
    )
    SELECT
        %(destination_id)s::text, %(step_number)s::integer, %(name)s::text, %(kind)s::text,
        %(payload)s::text, 1, %(started_at)s::bigint, now_ms(), %(epoch)s::bigint
    FROM target
    WHERE open AND NOT duplicate AND NOT queued
    ON CONFLICT DO NOTHING
    RETURNING step_number
), inserted AS (
    INSERT INTO messages (destination_id, topic, payload, idempotency_key, created_at, consumed)
    SELECT
        %(destination_id)s::text, %(topic)s::text, %(payload)s::text,
        %(idempotency_key)s::text, now_ms(), EXISTS (SELECT 1 FROM step)
    FROM target
    WHERE open AND NOT duplicate
    ON CONFLICT DO NOTHING
    RETURNING consumed
)
SELECT
    (SELECT status FROM target) AS status,
    COALESCE((SELECT duplicate FROM target), false) AS duplicate,
    EXISTS (SELECT 1 FROM inserted) AS inserted,
    COALESCE((SELECT consumed FROM inserted), false) AS delivered

-- deliver_messages_batch --
-- Group commit (PostgreSQL only): sends from outside workflows to recvs parked in the sender's process, in one statement. Each message is inserted consumed, with its recv's step recording it, when no older message waits on the topic and the step is recorded (number free, fenced like every step); otherwise it is inserted for a recv to take. Per input ordinal: the destination's status, whether the key was used before, whether the message was inserted, and whether it was delivered (the step recorded).
WITH input AS (
    SELECT * FROM unnest(
        %(destination_ids)b::text[], %(topics)b::text[], %(payloads)b::text[],
        %(idempotency_keys)b::text[], %(step_numbers)b::integer[], %(names)b::text[],
        %(kinds)b::text[], %(started_ats)b::bigint[], %(epochs)b::bigint[]
    ) WITH ORDINALITY AS t(
        destination_id, topic, payload, idempotency_key, step_number, name, kind, started_at,
        epoch, ordinal
    )
), target AS (  -- each lookup by key, whatever the plan (see record_steps_batch)
    SELECT
        input.*,
        workflows.status,
        used.destination_id IS NOT NULL AS duplicate,
        waiting.message_id IS NOT NULL AS queued,
        workflows.status NOT IN (
            'SUCCESS', 'ERROR', 'CANCELLED', 'COMPENSATED', 'COMPENSATION_FAILED',
            'MAX_RECOVERY_ATTEMPTS_EXCEEDED'
        ) AS open
    FROM input
    LEFT JOIN LATERAL (
        SELECT status FROM workflows WHERE workflows.workflow_id = input.destination_id LIMIT 1
    ) AS workflows ON true
    LEFT JOIN LATERAL (
        SELECT destination_id FROM messages
        WHERE messages.destination_id = input.destination_id
          AND messages.idempotency_key = input.idempotency_key
        LIMIT 1
    ) AS used ON true
    LEFT JOIN LATERAL (
        SELECT message_id FROM messages
        WHERE messages.destination_id = input.destination_id
          AND messages.topic = input.topic AND NOT messages.consumed
        LIMIT 1
    ) AS waiting ON true
), step AS (
    INSERT INTO steps (
        workflow_id, step_number, name, kind, output, attempts, started_at, finished_at, epoch
    )
    SELECT destination_id, step_number, name, kind, payload, 1, started_at, now_ms(), epoch
    FROM target
    WHERE open AND NOT duplicate AND NOT queued
    ORDER BY ordinal
    ON CONFLICT DO NOTHING
    RETURNING workflow_id, step_number
), inserted AS (
    INSERT INTO messages (destination_id, topic, payload, idempotency_key, created_at, consumed)
    SELECT
        target.destination_id, target.topic, target.payload, target.idempotency_key, now_ms(),
        EXISTS (
            SELECT 1 FROM step
            WHERE step.workflow_id = target.destination_id
              AND step.step_number = target.step_number
        )
    FROM target
    WHERE open AND NOT duplicate
    ORDER BY ordinal
    ON CONFLICT DO NOTHING
    RETURNING destination_id, idempotency_key, consumed
)
SELECT
    target.ordinal,
    target.status,
    target.duplicate,
    inserted.destination_id IS NOT NULL AS inserted,
    COALESCE(inserted.consumed, false) AS delivered
FROM target LEFT JOIN inserted
    ON inserted.destination_id = target.destination_id
   AND inserted.idempotency_key = target.idempotency_key
ORDER BY target.ordinal

-- recv_messages_batch --
-- Group commit (PostgreSQL only): many workflows' recv in one statement (one per workflow and topic); per input ordinal, the oldest waiting message and the payload consumed with the step, or busy while another transaction holds that message, or (no message at all) whether the "otherwise" step given was recorded instead (recv's deadline as it parks).
WITH input AS (
    SELECT * FROM unnest(
        %(workflow_ids)b::text[], %(topics)b::text[], %(step_numbers)b::integer[],
        %(names)b::text[], %(kinds)b::text[], %(started_ats)b::bigint[], %(epochs)b::bigint[],
        %(otherwise_names)b::text[], %(otherwise_kinds)b::text[],
        %(otherwise_outputs)b::text[], %(otherwise_started_ats)b::bigint[]
    ) WITH ORDINALITY AS t(
        workflow_id, topic, step_number, name, kind, started_at, epoch, otherwise_name,
        otherwise_kind, otherwise_output, otherwise_started_at, ordinal
    )
), oldest AS (
    SELECT input.ordinal, first.message_id
    FROM input CROSS JOIN LATERAL (
        SELECT message_id FROM messages
        WHERE destination_id = input.workflow_id AND topic = input.topic AND NOT consumed
        ORDER BY message_id
        LIMIT 1
    ) AS first
), next AS (
    SELECT input.*, waiting.message_id, waiting.payload
    FROM input JOIN oldest USING (ordinal) CROSS JOIN LATERAL (
        SELECT message_id, payload FROM messages  -- the whole key (a message_id alone let a
        WHERE destination_id = input.workflow_id AND topic = input.topic  -- plan made on an
          AND message_id = oldest.message_id AND NOT consumed  -- empty table read the whole
        FOR UPDATE SKIP LOCKED  -- unconsumed index for it: 30-66 ms a statement at 60,000)
    ) AS waiting
), step AS (
    INSERT INTO steps (
        workflow_id, step_number, name, kind, output, attempts, started_at, finished_at, epoch
    )
    SELECT workflow_id, step_number, name, kind, payload, 1, started_at, now_ms(), epoch
    FROM next
    ORDER BY ordinal
    ON CONFLICT DO NOTHING
    RETURNING workflow_id, step_number
), consumed AS (
    UPDATE messages SET consumed = true
    FROM next JOIN step USING (workflow_id, step_number)
    WHERE messages.message_id = next.message_id
    RETURNING messages.message_id
), otherwise AS (
    INSERT INTO steps (
        workflow_id, step_number, name, kind, output, attempts, started_at, finished_at, epoch
    )
    SELECT
        input.workflow_id, input.step_number, input.otherwise_name, input.otherwise_kind,
        input.otherwise_output, 1, input.otherwise_started_at, now_ms(), input.epoch
    FROM input LEFT JOIN oldest USING (ordinal)
    WHERE input.otherwise_name IS NOT NULL AND oldest.message_id IS NULL
    ORDER BY input.ordinal
    ON CONFLICT DO NOTHING
    RETURNING workflow_id, step_number
)
SELECT
    input.ordinal,
    next.payload AS waiting,
    CASE WHEN EXISTS (SELECT 1 FROM consumed WHERE consumed.message_id = next.message_id)
        THEN next.payload END AS payload,
    oldest.message_id IS NOT NULL AND next.message_id IS NULL AS busy,
    EXISTS (
        SELECT 1 FROM otherwise
        WHERE otherwise.workflow_id = input.workflow_id
          AND otherwise.step_number = input.step_number
    ) AS otherwise
FROM input LEFT JOIN oldest USING (ordinal) LEFT JOIN next USING (ordinal)
ORDER BY input.ordinal

-- finish_after_step --
-- A workflow's last step and its final status in one statement: the step is inserted unless its number is taken or it is fenced off (no row), or (a recv that took a message delivered in this process, recv_topic given) a message waits unconsumed on that topic; the status written only then and only while PENDING in the same epoch (finished).
WITH recorded AS (
    INSERT INTO steps (
        workflow_id, step_number, name, kind, output, error, attempts, child_workflow_id,
        compensation, compensation_input, compensates_step, started_at, finished_at, epoch,
        args_hash
    )
    SELECT
        %(workflow_id)s::text, %(step_number)s::integer, %(name)s::text, %(kind)s::text,
        %(step_output)s::text, %(error)s::text, %(attempts)s::integer,
        %(child_workflow_id)s::text, %(compensation)s::text, %(compensation_input)s::text,
        %(compensates_step)s::integer, %(started_at)s::bigint,
        COALESCE(%(finished_at)s::bigint, now_ms()), %(epoch)s::bigint, %(args_hash)s::text
    WHERE %(recv_topic)s::text IS NULL OR NOT EXISTS (
        SELECT 1 FROM messages
        WHERE destination_id = %(workflow_id)s::text AND topic = %(recv_topic)s::text
          AND NOT consumed
    )
    ON CONFLICT DO NOTHING
    RETURNING workflow_id
), finished AS (
    UPDATE workflows
    SET status = %(status)s, output = %(output)s, error = NULL,
        finished_at = now_ms(), updated_at = now_ms()
    WHERE workflow_id = %(workflow_id)s AND status = 'PENDING'
      AND owner_epoch = %(epoch)s::bigint
      AND EXISTS (SELECT 1 FROM recorded)
    RETURNING workflow_id
)
SELECT EXISTS (SELECT 1 FROM finished) AS finished FROM recorded

-- finish_after_steps_batch --
-- Group commit (PostgreSQL only): finish_after_step for many workflows in one statement (a recv_topic refuses the step while a message waits unconsumed on it); per input ordinal, whether the step was inserted and whether the workflow was finished.
WITH input AS (
    SELECT * FROM unnest(
        %(workflow_ids)b::text[], %(step_numbers)b::integer[], %(names)b::text[],
        %(kinds)b::text[], %(step_outputs)b::text[], %(errors)b::text[], %(attempts)b::integer[],
        %(child_workflow_ids)b::text[], %(compensations)b::text[],
        %(compensation_inputs)b::text[], %(compensates_steps)b::integer[],
        %(started_ats)b::bigint[], %(finished_ats)b::bigint[], %(epochs)b::bigint[],
        %(args_hashes)b::text[], %(outputs)b::text[], %(recv_topics)b::text[]
    ) WITH ORDINALITY AS t(
        workflow_id, step_number, name, kind, step_output, error, attempts, child_workflow_id,
        compensation, compensation_input, compensates_step, started_at, finished_at, epoch,
        args_hash, output, recv_topic, ordinal
    )
), firsts AS (  -- one write per workflow: a later duplicate in the batch is refused
    SELECT DISTINCT ON (workflow_id) * FROM input ORDER BY workflow_id, ordinal
), recorded AS (
    INSERT INTO steps (
        workflow_id, step_number, name, kind, output, error, attempts, child_workflow_id,
        compensation, compensation_input, compensates_step, started_at, finished_at, epoch,
        args_hash
    )
    SELECT
        firsts.workflow_id, firsts.step_number, firsts.name, firsts.kind, firsts.step_output,
        firsts.error, firsts.attempts, firsts.child_workflow_id, firsts.compensation,
        firsts.compensation_input, firsts.compensates_step, firsts.started_at,
        COALESCE(firsts.finished_at, now_ms()), firsts.epoch, firsts.args_hash
    FROM firsts JOIN workflows ON workflows.workflow_id = firsts.workflow_id
    WHERE firsts.recv_topic IS NULL OR NOT EXISTS (
        SELECT 1 FROM messages
        WHERE messages.destination_id = firsts.workflow_id
          AND messages.topic = firsts.recv_topic AND NOT messages.consumed
    )
    ORDER BY firsts.ordinal
    ON CONFLICT DO NOTHING
    RETURNING workflow_id, step_number
), finished AS (
    UPDATE workflows
    SET status = %(status)s, output = firsts.output, error = NULL,
        finished_at = now_ms(), updated_at = now_ms()
    FROM firsts JOIN recorded USING (workflow_id, step_number)
    WHERE workflows.workflow_id = firsts.workflow_id AND workflows.status = 'PENDING'
      AND workflows.owner_epoch = firsts.epoch
    RETURNING workflows.workflow_id
)
SELECT
    input.ordinal,
    firsts.ordinal IS NOT NULL AND recorded.workflow_id IS NOT NULL AS inserted,
    firsts.ordinal IS NOT NULL AND finished.workflow_id IS NOT NULL AS finished
FROM input
LEFT JOIN firsts ON firsts.ordinal = input.ordinal
LEFT JOIN recorded
    ON recorded.workflow_id = firsts.workflow_id AND recorded.step_number = firsts.step_number
LEFT JOIN finished ON finished.workflow_id = firsts.workflow_id
ORDER BY input.ordinal

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
VALUES (%(app_version)s::text, now_ms(), now_ms())
ON CONFLICT (app_version) DO UPDATE SET last_seen_ms = GREATEST(app_versions.last_seen_ms, excluded.last_seen_ms)

-- list_versions --
-- Every application version seen (by a worker, or on a workflow): first and last seen, live workers, unfinished and total workflows.
WITH seen AS (
    SELECT app_version, first_seen_ms, last_seen_ms FROM app_versions
), runs AS (
    SELECT app_version, min(created_at) AS first_ms, max(updated_at) AS last_ms,
        count(*) FILTER (WHERE status IN ('PENDING', 'COMPENSATING')) AS unfinished,
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
    LEAST(seen.first_seen_ms, runs.first_ms, live.heartbeat_ms) AS first_seen_ms,
    GREATEST(seen.last_seen_ms, runs.last_ms, live.heartbeat_ms) AS last_seen_ms,
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
SET app_version = %(app_version)s::text, executor_id = NULL,
    owner_epoch = owner_epoch + 1, updated_at = now_ms()
WHERE workflow_id = ANY(%(workflow_ids)s::text[])
    AND status IN ('PENDING', 'COMPENSATING', 'ENQUEUED')
    AND (executor_id IS NULL OR executor_id <> ALL (
        SELECT executor_id FROM workers WHERE lease_expires_at > now_ms()
    ))
RETURNING *

-- record_audit --
-- One operator action, as it happened (never updated). Returns the row.
INSERT INTO audit_log (at_ms, actor, role, surface, action, workflow_id, reason, detail)
VALUES (now_ms(), %(actor)s, %(role)s, %(surface)s, %(action)s, %(workflow_id)s, %(reason)s,
    %(detail)s)
RETURNING *

-- list_audit --
-- Operator actions, newest first, optionally of one workflow or one action, before a cursor (an id).
SELECT * FROM audit_log
WHERE (%(workflow_id)s::text IS NULL OR workflow_id = %(workflow_id)s::text)
    AND (%(action)s::text IS NULL OR action = %(action)s::text)
    AND (%(before_id)s::bigint IS NULL OR id < %(before_id)s::bigint)
ORDER BY id DESC
LIMIT %(limit)s

-- lock_finished_workflows --
-- Of these workflows, the finished ones (any final status), locked for their deletion in this transaction; in id order, so two deletions never deadlock.
SELECT workflow_id FROM workflows
WHERE workflow_id = ANY(%(workflow_ids)s::text[])
    AND status IN ('SUCCESS', 'ERROR', 'CANCELLED', 'COMPENSATED', 'COMPENSATION_FAILED',
        'MAX_RECOVERY_ATTEMPTS_EXCEEDED')
ORDER BY workflow_id
FOR UPDATE

-- expired_workflows --
-- Up to a batch of workflows of one final status that finished before now minus a retention (database clock), oldest first, locked; rows another sweep holds are skipped, so two workers never wait on nor delete the same rows.
SELECT workflow_id FROM workflows
WHERE status = %(status)s::text AND finished_at IS NOT NULL
    AND finished_at < now_ms() - %(retention_ms)s::bigint
ORDER BY finished_at
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED

-- delete_workflow_steps --
-- Delete the steps of these workflows (part of deleting them).
DELETE FROM steps WHERE workflow_id = ANY(%(workflow_ids)s::text[])

-- delete_workflow_messages --
-- Delete the messages addressed to these workflows (part of deleting them).
DELETE FROM messages WHERE destination_id = ANY(%(workflow_ids)s::text[])

-- delete_workflow_events --
-- Delete the events of these workflows (part of deleting them).
DELETE FROM events WHERE workflow_id = ANY(%(workflow_ids)s::text[])

-- delete_workflow_streams --
-- Delete the streams of these workflows (part of deleting them).
DELETE FROM streams WHERE workflow_id = ANY(%(workflow_ids)s::text[])

-- delete_workflow_rows --
-- Delete these workflows' rows (their steps, messages, events and streams went first); returns the ids deleted.
DELETE FROM workflows WHERE workflow_id = ANY(%(workflow_ids)s::text[])
RETURNING workflow_id

-- session_schema --
-- Who a session is, and where it resolves unqualified names: through a transaction pooler search_path comes from the role's settings, not connect options, so the store checks it at open.
SELECT current_user AS user, current_database() AS database, current_schema() AS schema

-- connection_target --
-- Where a caller's connection points: its database, and whether the store's tables are there (a transactional start checks it before writing).
SELECT current_database() AS database, to_regclass(%(workflows_table)s::text) IS NOT NULL AS has_store

-- enter_schema --
-- Inside a caller's transaction: point search_path at the store's schema (and set the test clock) until leave_schema; returns the settings to restore.
WITH previous AS MATERIALIZED (
    SELECT current_setting('search_path') AS search_path,
        coalesce(current_setting('orchestrator.now_ms', true), '') AS now_ms
)
SELECT previous.search_path, previous.now_ms,
    set_config('search_path', %(schema)s::text, true) AS entered,
    set_config('orchestrator.now_ms', coalesce(%(now_ms)s::text, previous.now_ms), true) AS clock
FROM previous

-- leave_schema --
-- Give a caller's transaction back its own search_path (and clock setting).
SELECT set_config('search_path', %(search_path)s::text, true) AS search_path,
    set_config('orchestrator.now_ms', %(now_ms)s::text, true) AS now_ms

-- notify_unclaimed --
-- A workflow started inside a caller's transaction waits, PENDING with no executor, for a worker: wake the workers when (if) that transaction commits.
SELECT pg_notify(current_schema() || '_orchestrator', 'unclaimed:' || %(workflow_id)s::text || chr(31) || %(name)s::text)

-- claim_workflow --
-- Take a PENDING workflow nobody runs (started inside a caller's transaction) to run it here; the first claimer wins, the others get no row.
UPDATE workflows
SET executor_id = %(executor_id)s::text, owner_epoch = owner_epoch + 1, updated_at = now_ms()
WHERE workflow_id = %(workflow_id)s::text AND status = 'PENDING' AND executor_id IS NULL
    AND (%(app_version)s::text IS NULL OR app_version = %(app_version)s::text)
RETURNING *

-- insert_workflow_attributes --
-- Set (insert or overwrite) attributes of a workflow, given as a JSON object of name -> text value.
INSERT INTO workflow_attributes (workflow_id, name, value)
SELECT %(workflow_id)s::text, wanted.key, wanted.value
FROM jsonb_each_text(%(attributes)s::jsonb) AS wanted
ON CONFLICT (workflow_id, name) DO UPDATE SET value = EXCLUDED.value

-- count_workflow_attributes --
-- How many attributes a workflow has (the per-workflow limit is checked after a set).
SELECT count(*) AS n FROM workflow_attributes WHERE workflow_id = %(workflow_id)s::text

-- get_workflow_attributes --
-- The attributes of these workflows (a listing's page, or one workflow), by workflow then name.
SELECT workflow_id, name, value FROM workflow_attributes
WHERE workflow_id = ANY(%(workflow_ids)s::text[])
ORDER BY workflow_id, name

-- delete_workflow_attributes --
-- Delete the attributes of these workflows (part of deleting them).
DELETE FROM workflow_attributes WHERE workflow_id = ANY(%(workflow_ids)s::text[])

-- copy_workflow_attributes --
-- Give a fork its source's attributes (it replays the steps that set them, without writing).
INSERT INTO workflow_attributes (workflow_id, name, value)
SELECT %(workflow_id)s::text, name, value FROM workflow_attributes
WHERE workflow_id = %(source_id)s::text
ON CONFLICT (workflow_id, name) DO NOTHING

-- lock_message_keys --
-- Serialize sends by key and claims of the same keys (a JSON object name -> value) until commit, in one order (no deadlock).
SELECT pg_advisory_xact_lock(keyed.lock_id) FROM (
    SELECT hashtextextended('orchestrator.message_key:' || wanted.key || ':' || wanted.value, 0)
        AS lock_id
    FROM jsonb_each_text(%(keys)s::jsonb) AS wanted
    ORDER BY lock_id
    OFFSET 0
) AS keyed

-- key_holder --
-- The newest unfinished workflow holding an attribute (a message key), if any, with its subject; its row is key-share locked until commit, so it cannot be deleted before the message sent to it is stored.
SELECT w.workflow_id, s.value AS subject FROM workflow_attributes AS a
JOIN workflows AS w ON w.workflow_id = a.workflow_id
LEFT JOIN workflow_attributes AS s
    ON s.workflow_id = w.workflow_id AND s.name = %(subject_attribute)s::text
WHERE a.name = %(name)s::text AND a.value = %(value)s::text
    AND w.status <> ALL(%(final_statuses)s::text[])
ORDER BY w.created_at DESC, w.workflow_id DESC
LIMIT 1
FOR KEY SHARE OF w

-- key_message_used --
-- The workflow a message with this idempotency key already went to, holding the key, if any.
SELECT m.destination_id FROM workflow_attributes AS a
JOIN messages AS m ON m.destination_id = a.workflow_id
WHERE a.name = %(name)s::text AND a.value = %(value)s::text
    AND m.idempotency_key = %(idempotency_key)s::text
LIMIT 1

-- kept_message_expiry --
-- Until when a message kept for a key under this idempotency key waits (a retried send's answer).
SELECT expires_at FROM pending_messages
WHERE key_name = %(name)s::text AND key_value = %(value)s::text
    AND idempotency_key = %(idempotency_key)s::text

-- delete_expired_pending_key --
-- Forget a key's kept messages whose time is up.
DELETE FROM pending_messages
WHERE key_name = %(name)s::text AND key_value = %(value)s::text AND expires_at <= now_ms()

-- keep_message --
-- Keep a message for a key until a holder starts (or it expires), unless its idempotency key was kept already; returns its expiry.
INSERT INTO pending_messages (
    key_name, key_value, topic, payload, idempotency_key, created_at, expires_at
)
VALUES (
    %(name)s::text, %(value)s::text, %(topic)s::text, %(payload)s::text,
    %(idempotency_key)s::text, now_ms(), now_ms() + %(keep_ms)s::bigint
)
ON CONFLICT DO NOTHING
RETURNING expires_at

-- claim_pending_messages --
-- Move the unexpired kept messages of these keys (a JSON object name -> value) into a workflow's mailbox, in order of sending.
INSERT INTO messages (destination_id, topic, payload, idempotency_key, created_at)
SELECT %(workflow_id)s::text, p.topic, p.payload, p.idempotency_key, now_ms()
FROM pending_messages AS p
JOIN jsonb_each_text(%(keys)s::jsonb) AS wanted
    ON p.key_name = wanted.key AND p.key_value = wanted.value
WHERE p.expires_at > now_ms()
ORDER BY p.pending_id
ON CONFLICT DO NOTHING
RETURNING message_id, payload

-- set_message_payload --
-- Replace a message's stored payload (a claimed kept message sealed again for its new holder).
UPDATE messages SET payload = %(payload)s::text WHERE message_id = %(message_id)s::bigint

-- delete_pending_messages --
-- Forget every kept message of these keys (claimed just before, or expired).
DELETE FROM pending_messages AS p
USING jsonb_each_text(%(keys)s::jsonb) AS wanted
WHERE p.key_name = wanted.key AND p.key_value = wanted.value

-- get_subject_key --
-- A subject's data key (wrapped), if it has one.
SELECT key_id, wrapped_key FROM subject_keys WHERE subject = %(subject)s::text

-- insert_subject_key --
-- Give a subject its data key unless a concurrent writer just did (the caller reads it back).
INSERT INTO subject_keys (subject, key_id, wrapped_key, created_at)
VALUES (%(subject)s::text, %(key_id)s::text, %(wrapped_key)s::text, now_ms())
ON CONFLICT (subject) DO NOTHING

-- subject_keys_to_rewrap --
-- A page of data keys not wrapped under this master key, after a subject (keyset order; a read, no lock).
SELECT subject, key_id, wrapped_key FROM subject_keys
WHERE subject > %(after)s::text AND split_part(wrapped_key, ':', 1) <> %(master_key_id)s::text
ORDER BY subject
LIMIT %(limit)s::integer

-- rewrap_subject_key --
-- Store a data key wrapped anew, only if its row is still the one read (not erased, renewed or rewrapped since).
UPDATE subject_keys SET wrapped_key = %(new_wrapped_key)s::text
WHERE subject = %(subject)s::text AND key_id = %(key_id)s::text
    AND wrapped_key = %(wrapped_key)s::text

-- delete_subject_key --
-- Erase a subject's data key: its payloads become unreadable.
DELETE FROM subject_keys WHERE subject = %(subject)s::text
