-- One running cycle per stage and timeframe. A second execution that starts while one runs is recorded as
-- SKIPPED with its reason; a cycle whose execution ended without closing it (interrupted, timed out) is closed
-- as ABORTED or TIMED_OUT by the next one, with its reason.

ALTER TABLE cycles ADD COLUMN reason text NOT NULL DEFAULT '';
ALTER TABLE cycles DROP CONSTRAINT cycles_status_check;
ALTER TABLE cycles ADD CONSTRAINT cycles_status_check
    CHECK (status IN ('RUNNING', 'SUCCEEDED', 'FAILED', 'SKIPPED', 'ABORTED', 'TIMED_OUT'));

-- Cycles left RUNNING by an interrupted run before this migration: all but the newest per stage and timeframe
-- cannot be running any more.
UPDATE cycles SET status = 'ABORTED', finished_at = now(),
                  reason = 'left running before cycles were locked per stage and timeframe'
WHERE status = 'RUNNING' AND id NOT IN (
    SELECT DISTINCT ON (stage, timeframe) id FROM cycles WHERE status = 'RUNNING'
    ORDER BY stage, timeframe, started_at DESC
);

CREATE UNIQUE INDEX cycles_one_running_idx ON cycles (stage, timeframe) WHERE status = 'RUNNING';
