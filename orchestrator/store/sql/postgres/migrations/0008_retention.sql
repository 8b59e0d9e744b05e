-- 0008_retention: what deleting finished workflows (an operator's delete, the retention sweep)
-- reads, indexed so that neither scans a table.
--
--   workflows_finished     (status, finished_at) of finished rows only: the sweep asks for the
--                          oldest rows of one final status finished before a bound, a range read
--                          here. Partial (finished_at IS NOT NULL), so a workflow's insert
--                          (finished_at is NULL then) never touches it: the start hot path keeps
--                          its index count; the finishing update, which changes status (indexed
--                          already, so never a HOT update), adds one entry.
--   messages_destination   the messages addressed to a workflow, consumed or not: deleting a
--                          workflow deletes its mailbox, and the foreign key's cascade looks
--                          messages up by destination_id for every deleted row. Without it each
--                          deleted workflow would cost a scan of messages (the two existing
--                          indexes are partial: unconsumed ones, idempotency keys). It costs one
--                          entry per send, not per step.
-- The audit log is not touched: it outlives the workflows it names (0007_console).

CREATE INDEX workflows_finished ON workflows (status, finished_at)
    WHERE finished_at IS NOT NULL;
CREATE INDEX messages_destination ON messages (destination_id);
