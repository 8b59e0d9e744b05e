-- 0006_versions: SQLite mirror of sql/postgres/migrations/0006_versions.sql (app_versions,
-- steps.args_hash).

CREATE TABLE app_versions (
    app_version    TEXT PRIMARY KEY,
    first_seen_ms  INTEGER NOT NULL,
    last_seen_ms   INTEGER NOT NULL
);

ALTER TABLE steps ADD COLUMN args_hash TEXT;
