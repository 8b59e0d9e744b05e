-- 0004_fencing: only the current owner of a workflow may write its history, and a finished
-- workflow accepts nothing more. Why it exists: a worker paused past its lease (SIGSTOP, a long
-- GC, a network partition) woke up and wrote a step into a workflow that another worker had
-- taken over, or that had already ended. A check in the worker (its lease, its clock) can always
-- be out of date by the time its write lands; the database, deciding in the write itself, cannot.
--
--   workflows.owner_epoch  the ownership epoch, a fencing token: incremented each time an
--                          executor takes the workflow to run it (dequeue, recovery at launch,
--                          takeover of a dead worker's work, resume, a reopened rollback). A
--                          run carries the epoch it was given and writes with it.
--   steps.epoch            the epoch of the run that wrote the step (NULL on rows from before
--                          this migration).
--   steps_fence            BEFORE INSERT on steps: the row goes in only if its workflow is not
--                          finished and the row's epoch is the workflow's owner_epoch. Otherwise
--                          it is skipped without an error (the writer sees "not recorded", reads
--                          why, and stops). The workflow row is locked FOR SHARE, so a status
--                          change or a takeover committing at the same time is ordered entirely
--                          before or after the insert: nothing lands after a final status.
-- Final statuses and the move to COMPENSATING written by a run compare owner_epoch in their
-- UPDATE too (queries.sql). Message consumption is fenced through the recv step it commits with.
--
--   workflows.rollback_after_step
--                          set when a rollback begins, before its first compensation runs:
--                          the compensations take the step numbers after it. Recovery resumes
--                          such a rollback from the records, without replaying the forward
--                          steps, so the compensations keep their numbers (and idempotency
--                          keys) whatever the forward code does on a second run.

ALTER TABLE workflows ADD COLUMN owner_epoch bigint NOT NULL DEFAULT 0;
ALTER TABLE workflows ADD COLUMN rollback_after_step integer;
ALTER TABLE steps ADD COLUMN epoch bigint;

CREATE FUNCTION steps_fence() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    current_status text;
    current_epoch bigint;
BEGIN
    SELECT status, owner_epoch INTO current_status, current_epoch
    FROM workflows WHERE workflow_id = NEW.workflow_id
    FOR SHARE;
    IF NOT FOUND THEN
        RETURN NEW;  -- the foreign key reports the missing workflow
    END IF;
    IF current_epoch = NEW.epoch
        AND current_status IN ('ENQUEUED', 'PENDING', 'COMPENSATING') THEN
        RETURN NEW;
    END IF;
    RETURN NULL;  -- fenced off: finished, or another run's to write
END
$$;

CREATE TRIGGER steps_fence BEFORE INSERT ON steps
    FOR EACH ROW EXECUTE FUNCTION steps_fence();
