-- Portal logins: browser sessions behind the portal's cookie, local
-- passwords for bootstrap admins, and OIDC logins in flight.

CREATE TABLE portal_sessions (
    -- The public id: logs, revocation events. Never a credential.
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- SHA-256 of the cookie's value; the value itself is never stored.
    token_hash     bytea NOT NULL UNIQUE,
    user_id        bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    -- Sent back by the portal in X-CSRF-Token on every state change.
    csrf_token     text NOT NULL,
    source         text NOT NULL CHECK (source IN ('local', 'ldap', 'oidc')),
    -- The OIDC ID token, the hint for RP-initiated logout; '' otherwise.
    id_token       text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_seen_at   timestamptz NOT NULL DEFAULT now(),
    idle_timeout_s bigint NOT NULL CHECK (idle_timeout_s > 0),
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz
);
CREATE INDEX portal_sessions_user ON portal_sessions (user_id);
CREATE INDEX portal_sessions_expires ON portal_sessions (expires_at);

-- argon2id PHC strings (package sso); only for users an admin gave one.
CREATE TABLE local_passwords (
    user_id     bigint PRIMARY KEY REFERENCES users ON DELETE CASCADE,
    hash        text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- An OIDC authorization request between redirect and callback, used once.
CREATE TABLE oidc_flows (
    state       text PRIMARY KEY,
    nonce       text NOT NULL,
    verifier    text NOT NULL,
    return_to   text NOT NULL DEFAULT '/',
    expires_at  timestamptz NOT NULL
);
