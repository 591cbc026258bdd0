-- A job id names one session among the live ones only. Slurm reuses job ids
-- (after MaxJobId wraps, or when its state is reset), and an ended session
-- keeps its job's id for the record: unique over all of history, the index
-- made the recording of a reused id fail on every pass, leaving the new
-- session "submitting" for ever while its job ran unwatched.
DROP INDEX sessions_job;
CREATE UNIQUE INDEX sessions_job ON sessions (job_id)
    WHERE job_id IS NOT NULL AND state IN ('PENDING', 'PREPARING', 'RUNNING', 'TERMINATING');
