-- 0003_workers_queues_schedules: many workers share one database. Why it exists: workers hold
-- leases (a dead worker's workflows are taken over), queues wake their workers at once, and
-- schedules live in the database so any worker can run them.
--
-- SQLite mirror of sql/postgres/migrations/0003_workers_queues_schedules.sql (see its header);
-- notify(kind, detail) is the store's Python function, delivered after COMMIT.

-- Insertion order of workflows is their rowid here (PostgreSQL adds a seq column).
CREATE INDEX workflows_queue_order ON workflows (queue_name, priority)
    WHERE status = 'ENQUEUED';

CREATE TABLE workers (
    executor_id        text PRIMARY KEY,
    app_version        text,
    host               text,
    pid                integer,
    started_at         bigint NOT NULL,
    heartbeat_at       bigint NOT NULL,
    lease_expires_at   bigint NOT NULL
);

CREATE INDEX workers_lease ON workers (lease_expires_at);
CREATE INDEX workflows_queue_started ON workflows (queue_name, started_at)
    WHERE queue_name IS NOT NULL;

CREATE TABLE schedules (
    name            text PRIMARY KEY,
    workflow_name   text NOT NULL,
    cron            text NOT NULL,
    input           text NOT NULL,
    paused          boolean NOT NULL DEFAULT false,
    catch_up        boolean NOT NULL DEFAULT false,
    declared        boolean NOT NULL DEFAULT false,
    last_tick_ms    bigint,
    created_at      bigint NOT NULL,
    updated_at      bigint NOT NULL
);

CREATE TRIGGER workflows_notify_queue_insert AFTER INSERT ON workflows
WHEN NEW.queue_name IS NOT NULL AND NEW.status = 'ENQUEUED'
BEGIN
    SELECT notify('queue', NEW.queue_name);
END;

CREATE TRIGGER workflows_notify_queue_update AFTER UPDATE OF status ON workflows
WHEN NEW.queue_name IS NOT NULL AND OLD.status IS NOT NEW.status
BEGIN
    SELECT notify('queue', NEW.queue_name);
END;

CREATE TRIGGER schedules_notify_insert AFTER INSERT ON schedules
BEGIN
    SELECT notify('schedules', '');
END;

CREATE TRIGGER schedules_notify_update AFTER UPDATE ON schedules
BEGIN
    SELECT notify('schedules', '');
END;

CREATE TRIGGER schedules_notify_delete AFTER DELETE ON schedules
BEGIN
    SELECT notify('schedules', '');
END;
