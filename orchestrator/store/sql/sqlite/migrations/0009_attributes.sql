-- 0009_attributes: SQLite mirror of sql/postgres/migrations/0009_attributes.sql (a workflow's
-- business keys in a side table, text values, looked up by (name, value)).

CREATE TABLE workflow_attributes (
    workflow_id   text NOT NULL REFERENCES workflows (workflow_id) ON DELETE CASCADE,
    name          text NOT NULL,
    value         text NOT NULL,
    PRIMARY KEY (workflow_id, name)
);
CREATE INDEX workflow_attributes_lookup ON workflow_attributes (name, value, workflow_id);
