-- 0002_notify: wake waiters at once (recv, get_event, streams, results, queues) instead of polling.
--
-- SQLite mirror of sql/postgres/migrations/0002_notify.sql. notify(kind, detail) is a Python
-- function the store registers on its connection: it queues the notification, and the store
-- delivers the queue to its listeners after COMMIT (and drops it on ROLLBACK), as PostgreSQL
-- delivers NOTIFY at commit. Kinds are orchestrator.store.base.NOTIFY_*; detail joins its fields
-- with char(31) (the unit separator, SEPARATOR in base.py):
--   message    a message was inserted          detail: destination_id, topic
--   event      an event was set (or replaced)  detail: workflow_id, key
--   stream     a stream value was appended     detail: workflow_id, key
--   workflow   a workflow's status changed, or it was enqueued      detail: workflow_id

CREATE TRIGGER messages_notify AFTER INSERT ON messages
BEGIN
    SELECT notify('message', NEW.destination_id || char(31) || NEW.topic);
END;

CREATE TRIGGER events_notify_insert AFTER INSERT ON events
BEGIN
    SELECT notify('event', NEW.workflow_id || char(31) || NEW.key);
END;

CREATE TRIGGER events_notify_update AFTER UPDATE ON events
BEGIN
    SELECT notify('event', NEW.workflow_id || char(31) || NEW.key);
END;

CREATE TRIGGER streams_notify AFTER INSERT ON streams
BEGIN
    SELECT notify('stream', NEW.workflow_id || char(31) || NEW.key);
END;

CREATE TRIGGER workflows_notify_status AFTER UPDATE OF status ON workflows
    WHEN OLD.status IS NOT NEW.status
BEGIN
    SELECT notify('workflow', NEW.workflow_id);
END;

-- An enqueued workflow wakes the workers polling its queue.
CREATE TRIGGER workflows_notify_enqueued AFTER INSERT ON workflows
    WHEN NEW.status = 'ENQUEUED'
BEGIN
    SELECT notify('workflow', NEW.workflow_id);
END;
