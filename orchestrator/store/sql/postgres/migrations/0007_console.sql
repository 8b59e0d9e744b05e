-- 0007_console: the operator audit log, and the keyset order the console pages workflows by.
--
--   audit_log                  one row per operator action from any surface (Python, HTTP, the
--                              console, the CLI): who (actor, role), when, what (action, the
--                              workflow it acted on, the filter of a bulk action in detail),
--                              why (reason). Rows are never updated; they outlive the workflow
--                              they name (no foreign key), so an audit survives its deletion.
--   workflows_created_seq      replaces workflows_created_at: the list's order (created_at,
--                              seq) as one index, so a page after a cursor is an index range
--                              read, whatever the page's depth (the same index count as before:
--                              a workflow's insert maintains no more indexes than it did).

CREATE TABLE audit_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at_ms        bigint NOT NULL,
    actor        text NOT NULL,
    role         text,
    surface      text NOT NULL,
    action       text NOT NULL,
    workflow_id  text,
    reason       text,
    detail       text                                   -- JSON object
);
CREATE INDEX audit_log_workflow ON audit_log (workflow_id, id) WHERE workflow_id IS NOT NULL;

DROP INDEX workflows_created_at;
CREATE INDEX workflows_created_seq ON workflows (created_at, seq);
