-- 0012_quiet_claims: a queue's dequeue notifies nobody (see the PostgreSQL migration of the same
-- name for why): no 'workflow' notification when a workflow is enqueued, none of either kind
-- when a worker claims it (ENQUEUED -> PENDING).

DROP TRIGGER workflows_notify_enqueued;

DROP TRIGGER workflows_notify_status;
CREATE TRIGGER workflows_notify_status AFTER UPDATE OF status ON workflows
    WHEN OLD.status IS NOT NEW.status
        AND NOT (OLD.status = 'ENQUEUED' AND NEW.status = 'PENDING')
BEGIN
    SELECT notify('workflow', NEW.workflow_id);
END;

DROP TRIGGER workflows_notify_queue_update;
CREATE TRIGGER workflows_notify_queue_update AFTER UPDATE OF status ON workflows
    WHEN NEW.queue_name IS NOT NULL AND OLD.status IS NOT NEW.status
        AND NOT (OLD.status = 'ENQUEUED' AND NEW.status = 'PENDING')
BEGIN
    SELECT notify('queue', NEW.queue_name);
END;
