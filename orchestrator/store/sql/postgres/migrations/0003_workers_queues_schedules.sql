-- 0003_workers_queues_schedules: many workers share one database. Why it exists: workers hold
-- leases (a dead worker's workflows are taken over), queues wake their workers at once, and
-- schedules live in the database so any worker can run them.
--
--   workers     one row per live (or recently dead) executor: its lease, renewed by heartbeat
--               on the database clock. lease_expires_at < now_ms() means dead: any live worker
--               of the same app_version may take over its PENDING/COMPENSATING workflows.
--   schedules   cron schedules (six fields, seconds first). A tick runs once however many
--               workers tick it: its workflow id is derived from the schedule and the tick.
--   queue notifications: 'queue:<name>' when a workflow is enqueued on a queue or a queued
--   workflow changes status (a slot may have freed), so idle workers dequeue within
--   milliseconds instead of on a polling tick.

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
    input           text NOT NULL,                -- JSON {"args": [...], "kwargs": {...}}
    paused          boolean NOT NULL DEFAULT false,
    catch_up        boolean NOT NULL DEFAULT false,
    declared        boolean NOT NULL DEFAULT false, -- from @app.workflow(schedule=...)
    last_tick_ms    bigint,
    created_at      bigint NOT NULL,
    updated_at      bigint NOT NULL
);

CREATE FUNCTION notify_queue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '_orchestrator', 'queue:' || NEW.queue_name);
    RETURN NULL;
END
$$;

CREATE TRIGGER workflows_notify_queue_insert AFTER INSERT ON workflows
    FOR EACH ROW WHEN (NEW.queue_name IS NOT NULL AND NEW.status = 'ENQUEUED')
    EXECUTE FUNCTION notify_queue();

CREATE TRIGGER workflows_notify_queue_update AFTER UPDATE OF status ON workflows
    FOR EACH ROW WHEN (NEW.queue_name IS NOT NULL AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION notify_queue();

CREATE FUNCTION notify_schedules() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '_orchestrator', 'schedules:');
    RETURN NULL;
END
$$;

CREATE TRIGGER schedules_notify AFTER INSERT OR UPDATE OR DELETE ON schedules
    FOR EACH STATEMENT EXECUTE FUNCTION notify_schedules();
