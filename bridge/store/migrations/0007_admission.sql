-- Admission control in one round trip (bridge/admission.go).
--
-- The gateway reads the policies without a lock and turns them into bounds:
-- "this scope's use of this metric, plus what the new session asks, may not
-- exceed max". admission_check takes the admission locks of the scopes with
-- bounds, sums every bound's metric over the domain's live sessions in one
-- pass, and raises SQLSTATE SGQ01 for the first bound the session would
-- break. The gateway queues it and the session's INSERT in one pipeline with
-- one Sync, so both run in one implicit transaction: the locks are held while
-- the server checks, inserts and commits, never across a network round trip.
--
-- A function rather than a statement of the gateway's because under READ
-- COMMITTED a statement's snapshot is taken when it starts: a statement that
-- took the lock and summed in one go would not see the sessions the previous
-- holder committed while it waited. Each statement in a function takes a
-- fresh snapshot, after the lock.
--
-- Locks: one per scope that has bounds (advisory keys (72, user),
-- (71, project), (7, domain), always taken in that order, so two admissions
-- never wait on each other crosswise). Two admissions whose sums could
-- change each other's verdict share a bounded scope: its policy bounds every
-- session created in it, so both hold that scope's lock. Only a metric the
-- new session does not add to is left unbounded (a CPU-only session under a
-- GPU limit), and that sum it cannot change. So users with only per-user
-- limits never queue behind each other, and a domain limit serialises the
-- domain's admissions, as it must.
--
-- The domain's live sessions hold every session any bound counts: a user
-- and the projects they may run in belong to one domain (SetMembership
-- refuses others).
--
-- Metrics: sessions (live ones), pending, cpus, memory_mb, gpus. For gpus,
-- gpu_type '' is every type together, and a type counts its own GPUs and
-- untyped ones, which may sit on any type.
CREATE FUNCTION admission_check(in_domain bigint, in_project bigint, in_user bigint, scopes text[], metrics text[],
                                gpu_types text[], maxes bigint[], asked bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    broken int;
    in_use bigint;
BEGIN
    IF coalesce(cardinality(metrics), 0) = 0 THEN
        RETURN; -- nothing bounded: nothing to serialise
    END IF;
    IF 'user' = ANY (scopes) THEN
        PERFORM pg_advisory_xact_lock(72, in_user::int);
    END IF;
    IF 'project' = ANY (scopes) THEN
        PERFORM pg_advisory_xact_lock(71, in_project::int);
    END IF;
    IF 'domain' = ANY (scopes) THEN
        PERFORM pg_advisory_xact_lock(7, in_domain::int);
    END IF;
    -- One pass over the domain's live sessions, grouped by GPU type and by
    -- whether they are the project's and the user's: a handful of rows that
    -- every bound then sums, however many sessions are live.
    WITH live AS MATERIALIZED (
        SELECT s.gpu_type AS t, s.project_id = in_project AS of_project, s.user_id = in_user AS of_user,
               count(*) AS n, count(*) FILTER (WHERE s.state = 'PENDING') AS p,
               sum(s.cpus) AS c, sum(s.memory_mb) AS m, sum(s.gpus) AS g
          FROM sessions s
         WHERE s.domain_id = in_domain AND s.state IN ('PENDING', 'PREPARING', 'RUNNING', 'TERMINATING')
         GROUP BY 1, 2, 3)
    SELECT b.i, u.used INTO broken, in_use
      FROM unnest(scopes, metrics, gpu_types, maxes, asked) WITH ORDINALITY AS b(scope, metric, gpu_type, max, asked, i)
     CROSS JOIN LATERAL (
        SELECT (CASE b.metric
                    WHEN 'sessions' THEN coalesce(sum(l.n), 0)
                    WHEN 'pending' THEN coalesce(sum(l.p), 0)
                    WHEN 'cpus' THEN coalesce(sum(l.c), 0)
                    WHEN 'memory_mb' THEN coalesce(sum(l.m), 0)
                    WHEN 'gpus' THEN coalesce(sum(l.g) FILTER (WHERE b.gpu_type = '' OR l.t IN (b.gpu_type, '')), 0)
                END)::bigint AS used
          FROM live l
         WHERE b.scope = 'domain' OR (b.scope = 'project' AND l.of_project) OR (b.scope = 'user' AND l.of_user)) u
     WHERE u.used IS NULL OR u.used + b.asked > b.max
     ORDER BY b.i
     LIMIT 1;
    IF FOUND THEN
        IF in_use IS NULL THEN
            RAISE EXCEPTION 'admission_check: unknown metric %', metrics[broken];
        END IF;
        -- DETAIL: the bound's index (from 0) and the use found, for the
        -- gateway to word the refusal.
        RAISE EXCEPTION 'session would exceed a quota' USING ERRCODE = 'SGQ01', DETAIL = (broken - 1) || ' ' || in_use;
    END IF;
END
$$;

-- The scan above: a domain's live sessions, without reading its history.
CREATE INDEX sessions_live_domain ON sessions (domain_id)
    WHERE state IN ('PENDING', 'PREPARING', 'RUNNING', 'TERMINATING');
