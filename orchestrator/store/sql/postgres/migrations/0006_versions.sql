-- 0006_versions: the application versions that have run, and an opt-in hash of step arguments.
--
--   app_versions           one row per application version a worker has launched with: when it
--                          was first and last seen (a worker's launch, then its periodic check
--                          for stranded workflows). Together with the live workers and the
--                          unfinished workflows of each version, it answers `saga versions`.
--   steps.args_hash        with Orchestrator(check_step_arguments=True): a hash of the
--                          arguments a step was called with, so a replay that calls the right
--                          step with different arguments is named (NULL: not recorded).
-- No index is added for the stranded count (every worker, once a minute): it reads the unfinished
-- workflows through workflows_status_executor (status first); an index on app_version would be
-- maintained by every workflow's insert and status change, and cost throughput (measured).

CREATE TABLE app_versions (
    app_version    text PRIMARY KEY,
    first_seen_ms  bigint NOT NULL,
    last_seen_ms   bigint NOT NULL
);

ALTER TABLE steps ADD COLUMN args_hash text;
