-- 0012_quiet_claims: a queue's dequeue notifies nobody (issue #21, queues at the speed of direct
-- starts). Why it exists: every enqueue sent 'workflow:<id>' besides 'queue:<name>', and every
-- claim (ENQUEUED -> PENDING) sent 'workflow:<id>' and 'queue:<name>' again. Nothing waits for
-- either: a result or event waiter wants a final status (or an event), a claim frees no slot of
-- any queue limit, and the worker that claims a workflow already knows it runs it. Yet each of
-- them woke every worker's dequeue loop (one more dequeue transaction per worker per claim) and
-- every result waiter of the workflow (one more read of its row per workflow), which cost a
-- queued workflow about two reads and two commits more than a direct start.
--
-- Still notified: 'queue:<name>' on enqueue and on every other status change of a queued
-- workflow (a slot frees when it ends, or when it goes back to its queue from a dead worker),
-- and 'workflow:<id>' on every other status change (results, cancels, takeovers, stop checks).

DROP TRIGGER workflows_notify_enqueued ON workflows;

DROP TRIGGER workflows_notify_status ON workflows;
CREATE TRIGGER workflows_notify_status AFTER UPDATE OF status ON workflows
    FOR EACH ROW WHEN (
        OLD.status IS DISTINCT FROM NEW.status
        AND NOT (OLD.status = 'ENQUEUED' AND NEW.status = 'PENDING')
    )
    EXECUTE FUNCTION notify_workflow();

DROP TRIGGER workflows_notify_queue_update ON workflows;
CREATE TRIGGER workflows_notify_queue_update AFTER UPDATE OF status ON workflows
    FOR EACH ROW WHEN (
        NEW.queue_name IS NOT NULL
        AND OLD.status IS DISTINCT FROM NEW.status
        AND NOT (OLD.status = 'ENQUEUED' AND NEW.status = 'PENDING')
    )
    EXECUTE FUNCTION notify_queue();
