-- 0005_clock: a session may read a test clock instead of the real one.
--
-- now_ms() is the time of everything the database decides (deadlines, leases, queue windows,
-- schedules). A store built with a clock (an Orchestrator given a FakeClock) sets
-- orchestrator.now_ms on each connection it checks out, so its SQL sees the same time as its
-- engine; every other session has the setting unset (NULL, or '' once reset) and reads the
-- real clock, as before.

CREATE OR REPLACE FUNCTION now_ms() RETURNS bigint
    LANGUAGE sql VOLATILE
    AS $$
        SELECT coalesce(
            nullif(current_setting('orchestrator.now_ms', true), '')::bigint,
            (extract(epoch FROM clock_timestamp()) * 1000)::bigint
        )
    $$;
