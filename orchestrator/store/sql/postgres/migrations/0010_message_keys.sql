-- 0010_message_keys: messages addressed to a business key ("order_id:42", a workflow
-- attribute) that no unfinished workflow holds yet, kept until one starts with that key (or
-- sets it), instead of answering 404 and relying on the sender's retries.
--
--   pending_messages   one row per kept message: the key (an attribute's name and value), the
--                      topic, the payload, the sender's idempotency key, and until when it is
--                      kept (expires_at, on now_ms()). A start (or set_attributes) that gives
--                      a workflow the key moves its unexpired rows into that workflow's
--                      mailbox (messages) and deletes them all, in its own transaction, under
--                      a transaction-scoped advisory lock on the key that a send by key takes
--                      too: each kept message is delivered once, to one workflow, and a send
--                      racing a start either finds the holder or is claimed by it.
--   pending_messages_key
--                      (key_name, key_value, pending_id): a claim reads its key's rows in
--                      order of sending.
--   pending_messages_idempotency
--                      a repeated send with the same idempotency key is kept once.
-- Expired rows are never delivered; they are deleted when their key is next sent to or
-- claimed (orchestrator/store/plans.py).

CREATE TABLE pending_messages (
    pending_id        bigserial PRIMARY KEY,
    key_name          text NOT NULL,
    key_value         text NOT NULL,
    topic             text NOT NULL,                 -- '' is the default topic
    payload           text NOT NULL,                 -- JSON
    idempotency_key   text,
    created_at        bigint NOT NULL,
    expires_at        bigint NOT NULL
);
CREATE INDEX pending_messages_key ON pending_messages (key_name, key_value, pending_id);
CREATE UNIQUE INDEX pending_messages_idempotency
    ON pending_messages (key_name, key_value, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
