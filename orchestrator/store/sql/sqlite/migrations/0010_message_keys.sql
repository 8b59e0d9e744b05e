-- 0010_message_keys: SQLite mirror of sql/postgres/migrations/0010_message_keys.sql (messages
-- sent to a business key no workflow holds yet, kept until one starts with it or they expire).
-- SQLite's single writer serializes a send by key and a claim; no lock is needed.

CREATE TABLE pending_messages (
    pending_id        integer PRIMARY KEY AUTOINCREMENT,
    key_name          text NOT NULL,
    key_value         text NOT NULL,
    topic             text NOT NULL,
    payload           text NOT NULL,
    idempotency_key   text,
    created_at        integer NOT NULL,
    expires_at        integer NOT NULL
);
CREATE INDEX pending_messages_key ON pending_messages (key_name, key_value, pending_id);
CREATE UNIQUE INDEX pending_messages_idempotency
    ON pending_messages (key_name, key_value, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
