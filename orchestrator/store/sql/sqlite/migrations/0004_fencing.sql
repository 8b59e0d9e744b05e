-- 0004_fencing: only the current owner of a workflow may write its history, and a finished
-- workflow accepts nothing more.
--
-- SQLite mirror of sql/postgres/migrations/0004_fencing.sql (read its header for the why):
-- workflows.owner_epoch, workflows.rollback_after_step, steps.epoch, and a BEFORE INSERT trigger that skips (RAISE(IGNORE))
-- a step whose workflow has finished or whose epoch is not the workflow's owner_epoch. The
-- store's single connection serializes writes, so no row lock is needed. A missing workflow is
-- left to the foreign key, which reports it.

ALTER TABLE workflows ADD COLUMN owner_epoch integer NOT NULL DEFAULT 0;
ALTER TABLE workflows ADD COLUMN rollback_after_step integer;
ALTER TABLE steps ADD COLUMN epoch integer;

CREATE TRIGGER steps_fence BEFORE INSERT ON steps
    WHEN EXISTS (SELECT 1 FROM workflows WHERE workflow_id = NEW.workflow_id)
        AND NOT EXISTS (
            SELECT 1 FROM workflows
            WHERE workflow_id = NEW.workflow_id
              AND owner_epoch = NEW.epoch
              AND status IN ('ENQUEUED', 'PENDING', 'COMPENSATING')
        )
BEGIN
    SELECT RAISE(IGNORE);
END;
