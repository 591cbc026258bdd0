-- A session's agent: the hash of its secret and what the agent last told the
-- gateway. A table of its own rather than columns of sessions, so that the
-- frequent writes here (metrics, activity) do not fire the session change
-- trigger and wake every watcher of the session list.
CREATE TABLE session_agents (
    session_id       uuid PRIMARY KEY REFERENCES sessions ON DELETE CASCADE,
    -- SHA-256 of the 32 random bytes of the secret: a random secret needs no
    -- slow password hash, and the database never holds the secret itself.
    secret_hash      bytea NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    connected_at     timestamptz,
    agent_version    text NOT NULL DEFAULT '',
    -- The agent's latest readiness report: [{"name","ready","error"}].
    services         jsonb NOT NULL DEFAULT '[]',
    ready_at         timestamptz,
    -- The latest metrics (tunnel.Metrics JSON), written at most every few
    -- seconds, for GET …/metrics on a replica that does not hold the tunnel.
    metrics          jsonb,
    metrics_at       timestamptz,
    -- The last proxied traffic or above-threshold utilisation: what idle
    -- culling measures from.
    last_activity_at timestamptz,
    -- What the agent said when it began stopping ("SIGTERM from Slurm").
    stopping         text NOT NULL DEFAULT '',
    -- Why the gateway ended the session ("idle", "lifetime"), if it did.
    end_reason       text NOT NULL DEFAULT ''
);
