-- 0005_clock: a session may read a test clock instead of the real one.
--
-- SQLite mirror of sql/postgres/migrations/0005_clock.sql. Nothing to change here: SQLite's
-- now_ms() is a function each connection registers with the store's clock (sqlite.py), so a
-- store built with a clock already reads it. The migration keeps the two histories aligned.

SELECT 1;
