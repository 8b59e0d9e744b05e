-- 0011_subjects: SQLite mirror of sql/postgres/migrations/0011_subjects.sql (per-subject data
-- keys, stored wrapped under the keyring's master key; a workflow's subject is its reserved
-- "subject" attribute).

CREATE TABLE subject_keys (
    subject       text PRIMARY KEY,
    key_id        text NOT NULL,
    wrapped_key   text NOT NULL,
    created_at    integer NOT NULL
);
