-- 0008_retention: SQLite mirror of sql/postgres/migrations/0008_retention.sql (the sweep's
-- partial index on finished rows; messages by destination, so deleting a workflow's mailbox
-- reads an index range, not the table).

CREATE INDEX workflows_finished ON workflows (status, finished_at)
    WHERE finished_at IS NOT NULL;
CREATE INDEX messages_destination ON messages (destination_id);
