-- 0009_attributes: a workflow's business keys (customer id, order id, amount, provider), set at
-- its start or from inside it, so that operators find "the sagas of order o-42" without
-- decoding inputs.
--
--   workflow_attributes    one row per (workflow, name): value is text (numbers are stored as
--                          their text; a filter is equality on that text). A side table, not
--                          columns of workflows: a start without attributes inserts exactly what
--                          it did before (no wider row, no extra index entry on the hot path),
--                          and a start with some adds one statement in its transaction.
--   workflow_attributes_lookup
--                          (name, value, workflow_id): a filter "customer_id = c-7" is an index
--                          range giving the workflow ids; the primary key serves reading a
--                          page's attributes and deleting a workflow's.
-- Limits (names [a-z][a-z0-9_]{0,62}, values up to 256 characters, 20 per workflow) are the
-- engine's (orchestrator/attributes.py), checked before anything is written.

CREATE TABLE workflow_attributes (
    workflow_id   text NOT NULL REFERENCES workflows (workflow_id) ON DELETE CASCADE,
    name          text NOT NULL,
    value         text NOT NULL,
    PRIMARY KEY (workflow_id, name)
);
CREATE INDEX workflow_attributes_lookup ON workflow_attributes (name, value, workflow_id);
