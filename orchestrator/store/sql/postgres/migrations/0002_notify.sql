-- 0002_notify: wake waiters at once (recv, get_event, streams, results, queues) instead of polling.
--
-- Each trigger sends pg_notify on the channel '<schema>_orchestrator' with the payload
-- '<kind>:<detail>', where kind is one of orchestrator.store.base.NOTIFY_* and detail joins its
-- fields with chr(31) (the unit separator, SEPARATOR in base.py):
--   message    a message was inserted          detail: destination_id, topic
--   event      an event was set (or replaced)  detail: workflow_id, key
--   stream     a stream value was appended     detail: workflow_id, key
--   workflow   a workflow's status changed, or it was enqueued      detail: workflow_id
-- NOTIFY is delivered at commit, so a listener never sees a notification of a rolled-back write.

CREATE FUNCTION notify_message() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(
        TG_TABLE_SCHEMA || '_orchestrator',
        'message:' || NEW.destination_id || chr(31) || NEW.topic
    );
    RETURN NULL;
END
$$;

CREATE FUNCTION notify_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '_orchestrator', 'event:' || NEW.workflow_id || chr(31) || NEW.key);
    RETURN NULL;
END
$$;

CREATE FUNCTION notify_stream() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '_orchestrator', 'stream:' || NEW.workflow_id || chr(31) || NEW.key);
    RETURN NULL;
END
$$;

CREATE FUNCTION notify_workflow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '_orchestrator', 'workflow:' || NEW.workflow_id);
    RETURN NULL;
END
$$;

CREATE TRIGGER messages_notify AFTER INSERT ON messages
    FOR EACH ROW EXECUTE FUNCTION notify_message();

CREATE TRIGGER events_notify AFTER INSERT OR UPDATE ON events
    FOR EACH ROW EXECUTE FUNCTION notify_event();

CREATE TRIGGER streams_notify AFTER INSERT ON streams
    FOR EACH ROW EXECUTE FUNCTION notify_stream();

CREATE TRIGGER workflows_notify_status AFTER UPDATE OF status ON workflows
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION notify_workflow();

-- An enqueued workflow wakes the workers polling its queue.
CREATE TRIGGER workflows_notify_enqueued AFTER INSERT ON workflows
    FOR EACH ROW WHEN (NEW.status = 'ENQUEUED')
    EXECUTE FUNCTION notify_workflow();
