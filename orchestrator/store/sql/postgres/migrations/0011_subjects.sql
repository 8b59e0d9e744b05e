-- 0011_subjects: per-subject data keys (crypto-shredding, issue #20). A workflow started with a
-- subject ("customer:c-7") has its payloads encrypted by SubjectCodec with that subject's own
-- data key; deleting the key row makes every payload of the subject unreadable, everywhere,
-- while statuses, step names, timings, attributes and the audit stay as they are.
--
-- A workflow's subject is NOT a column of workflows: it is the workflow attribute named
-- "subject" (0009_attributes, a name reserved for it), written with the row at start. So a start
-- without a subject inserts exactly what it did before, operators list a subject's sagas with
-- the attribute filter they know, and deleting a workflow deletes it with its attributes.
--
--   subject_keys   one row per subject: key_id names this data key (a new one, with a new id,
--                  after an erasure), wrapped_key is the random 32-byte data key encrypted
--                  with AES-GCM under the keyring's master key ("<master key id>:<base64>"),
--                  so the database alone cannot read a payload. Created on a subject's first
--                  encoded value; erasure deletes the row (one statement).

CREATE TABLE subject_keys (
    subject       text PRIMARY KEY,
    key_id        text NOT NULL,
    wrapped_key   text NOT NULL,
    created_at    bigint NOT NULL
);
