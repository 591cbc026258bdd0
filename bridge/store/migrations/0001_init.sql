-- Slurmgate's desired and observed state. Forward-only: never edit a
-- migration that has shipped; add the next number instead.

-- Organisations ---------------------------------------------------------------

CREATE TABLE domains (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Also the Slurm account name: lower case, no dots (dots join domain and project).
    name        text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,30}$'),
    description text NOT NULL DEFAULT '',
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE projects (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    domain_id   bigint NOT NULL REFERENCES domains ON DELETE RESTRICT,
    -- Slurm account "<domain>.<project>".
    name        text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,30}$'),
    description text NOT NULL DEFAULT '',
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (domain_id, name)
);

CREATE TABLE users (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The POSIX account jobs run as; Slurm knows the user by this name.
    username    text NOT NULL UNIQUE CHECK (username ~ '^[a-z_][a-z0-9_-]{0,31}$'),
    uid         integer NOT NULL UNIQUE CHECK (uid > 0),
    email       text NOT NULL DEFAULT '',
    full_name   text NOT NULL DEFAULT '',
    domain_id   bigint NOT NULL REFERENCES domains ON DELETE RESTRICT,
    role        text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'domain-admin', 'superadmin')),
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive', 'locked')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE memberships (
    project_id  bigint NOT NULL REFERENCES projects ON DELETE CASCADE,
    user_id     bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    role        text NOT NULL DEFAULT 'member' CHECK (role IN ('member', 'project-admin')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

-- Credentials -------------------------------------------------------------------

CREATE TABLE keypairs (
    access_key   text PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    -- AES-GCM under the server key: HMAC verification needs the secret itself.
    secret_enc   bytea NOT NULL,
    description  text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    expires_at   timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX keypairs_user ON keypairs (user_id);

CREATE TABLE api_tokens (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    -- SHA-256 of the bearer token; the token itself is shown once.
    token_hash  bytea NOT NULL UNIQUE,
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);

-- Replay protection for signed requests: a signature is accepted once within
-- the clock-skew window; rows older than the window are purged.
CREATE TABLE request_nonces (
    signature   bytea PRIMARY KEY,
    seen_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX request_nonces_seen ON request_nonces (seen_at);

-- Policies ----------------------------------------------------------------------

-- One row per domain, project or user that has a policy. NULL means "no limit
-- at this level"; the effective limit is the tightest of the three levels.
CREATE TABLE policies (
    id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scope                   text NOT NULL CHECK (scope IN ('domain', 'project', 'user')),
    domain_id               bigint REFERENCES domains ON DELETE CASCADE,
    project_id              bigint REFERENCES projects ON DELETE CASCADE,
    user_id                 bigint REFERENCES users ON DELETE CASCADE,
    max_cpus                integer CHECK (max_cpus >= 0),
    max_memory_mb           bigint CHECK (max_memory_mb >= 0),
    -- GPU slots by type; the key "" counts GPUs of any type.
    max_gpus                jsonb NOT NULL DEFAULT '{}',
    max_concurrent_sessions integer CHECK (max_concurrent_sessions >= 0),
    max_pending_sessions    integer CHECK (max_pending_sessions >= 0),
    max_session_lifetime_s  bigint CHECK (max_session_lifetime_s > 0),
    idle_timeout_s          bigint CHECK (idle_timeout_s > 0),
    allowed_scaling_groups  text[],
    allowed_vfolder_hosts   text[],
    max_vfolders            integer CHECK (max_vfolders >= 0),
    vfolder_quota_bytes     bigint CHECK (vfolder_quota_bytes >= 0),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    CHECK ((scope = 'domain'  AND domain_id  IS NOT NULL AND project_id IS NULL AND user_id IS NULL) OR
           (scope = 'project' AND project_id IS NOT NULL AND domain_id  IS NULL AND user_id IS NULL) OR
           (scope = 'user'    AND user_id    IS NOT NULL AND domain_id  IS NULL AND project_id IS NULL))
);
CREATE UNIQUE INDEX policies_domain  ON policies (domain_id)  WHERE domain_id  IS NOT NULL;
CREATE UNIQUE INDEX policies_project ON policies (project_id) WHERE project_id IS NOT NULL;
CREATE UNIQUE INDEX policies_user    ON policies (user_id)    WHERE user_id    IS NOT NULL;

-- Catalogue -----------------------------------------------------------------------

CREATE TABLE scaling_groups (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    description text NOT NULL DEFAULT '',
    cluster     text NOT NULL,
    partitions  text[] NOT NULL CHECK (cardinality(partitions) > 0),
    gpu_types   text[] NOT NULL DEFAULT '{}',
    runtime     text NOT NULL DEFAULT 'none',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE presets (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
    description text NOT NULL DEFAULT '',
    cpus        integer NOT NULL CHECK (cpus > 0),
    memory_mb   bigint NOT NULL CHECK (memory_mb > 0),
    gpus        integer NOT NULL DEFAULT 0 CHECK (gpus >= 0),
    gpu_type    text NOT NULL DEFAULT '',
    time_limit_s bigint CHECK (time_limit_s > 0)
);

CREATE TABLE images (
    name        text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_./-]{0,126}$'),
    tag         text NOT NULL CHECK (tag ~ '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$'),
    -- Where nodes find it: a SIF path on shared storage, or a directory.
    location    text NOT NULL,
    runtime     text NOT NULL DEFAULT '',
    labels      jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, tag)
);

-- Sessions --------------------------------------------------------------------------

CREATE TABLE sessions (
    id              uuid PRIMARY KEY,
    name            text NOT NULL DEFAULT '',
    user_id         bigint NOT NULL REFERENCES users ON DELETE RESTRICT,
    project_id      bigint NOT NULL REFERENCES projects ON DELETE RESTRICT,
    domain_id       bigint NOT NULL REFERENCES domains ON DELETE RESTRICT,
    scaling_group   text NOT NULL REFERENCES scaling_groups ON DELETE RESTRICT,
    partition       text NOT NULL,
    type            text NOT NULL CHECK (type IN ('interactive', 'batch')),
    image           text NOT NULL,
    cpus            integer NOT NULL CHECK (cpus > 0),
    memory_mb       bigint NOT NULL CHECK (memory_mb > 0),
    gpus            integer NOT NULL DEFAULT 0 CHECK (gpus >= 0),
    gpu_type        text NOT NULL DEFAULT '',
    time_limit_s    bigint NOT NULL CHECK (time_limit_s > 0),
    environment     jsonb NOT NULL DEFAULT '{}',
    command         text NOT NULL DEFAULT '',
    mounts          jsonb NOT NULL DEFAULT '[]',
    idempotency_key text,
    max_wait_s      bigint,
    state           text NOT NULL CHECK (state IN ('PENDING', 'PREPARING', 'RUNNING', 'TERMINATING',
                                                   'TERMINATED', 'ERROR', 'CANCELLED')),
    sub_state       text NOT NULL DEFAULT '',
    job_id          bigint,
    slurm_state     text NOT NULL DEFAULT '',
    slurm_reason    text NOT NULL DEFAULT '',
    status_message  text NOT NULL DEFAULT '',
    estimated_start timestamptz,
    queue_position  integer,
    node            text NOT NULL DEFAULT '',
    exit_code       integer,
    stdout_path     text NOT NULL DEFAULT '',
    stderr_path     text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    ended_at        timestamptz,
    UNIQUE (user_id, idempotency_key)
);
-- Live sessions are what the reconciler reads every tick.
CREATE INDEX sessions_live ON sessions (state) WHERE state IN ('PENDING', 'PREPARING', 'RUNNING', 'TERMINATING');
CREATE INDEX sessions_user_created ON sessions (user_id, created_at DESC, id DESC);
CREATE INDEX sessions_project_created ON sessions (project_id, created_at DESC, id DESC);
CREATE INDEX sessions_created ON sessions (created_at DESC, id DESC);
CREATE UNIQUE INDEX sessions_job ON sessions (job_id) WHERE job_id IS NOT NULL;

CREATE TABLE session_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id  uuid NOT NULL REFERENCES sessions ON DELETE CASCADE,
    at          timestamptz NOT NULL DEFAULT now(),
    kind        text NOT NULL,
    from_state  text NOT NULL DEFAULT '',
    to_state    text NOT NULL DEFAULT '',
    message     text NOT NULL DEFAULT ''
);
CREATE INDEX session_events_session ON session_events (session_id, id);
