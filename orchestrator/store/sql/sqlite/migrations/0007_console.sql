-- 0007_console: SQLite mirror of sql/postgres/migrations/0007_console.sql (audit_log; the
-- list's keyset order is (created_at, rowid), which workflows_created_at already serves:
-- an index's entries carry the rowid).

CREATE TABLE audit_log (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms        INTEGER NOT NULL,
    actor        TEXT NOT NULL,
    role         TEXT,
    surface      TEXT NOT NULL,
    action       TEXT NOT NULL,
    workflow_id  TEXT,
    reason       TEXT,
    detail       TEXT
);
CREATE INDEX audit_log_workflow ON audit_log (workflow_id, id) WHERE workflow_id IS NOT NULL;
