-- The login handoff to app origins (subdomain mode): the portal cookie is
-- host-only, so a browser reaches {app}--{session}.<apps_domain> with no
-- credential. The portal's origin mints a one-time code for one app host
-- (app_handoffs); the app host redeems it for a cookie of its own
-- (app_credentials) that works only there, and only while the portal login
-- it came from lives.

-- A code between the portal's redirect and the app host's redeeming it:
-- single use (deleted when redeemed), valid for a minute.
CREATE TABLE app_handoffs (
    -- SHA-256 of the code; the code itself is never stored.
    code_hash         bytea PRIMARY KEY,
    user_id           bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    -- The portal login that asked, when the caller used the cookie; NULL
    -- for a bearer token or keypair.
    portal_session_id uuid REFERENCES portal_sessions ON DELETE CASCADE,
    session_id        uuid NOT NULL REFERENCES sessions ON DELETE CASCADE,
    -- The app host (lower case, no port) that may redeem the code.
    app_host          text NOT NULL,
    -- The latest the credential it becomes may live (the token's expiry,
    -- or a cap).
    credential_until  timestamptz NOT NULL,
    expires_at        timestamptz NOT NULL
);
CREATE INDEX app_handoffs_expires ON app_handoffs (expires_at);

-- An app host's cookie: valid for that host (so that session and app) only,
-- and, when it came from a portal login, only while that login is neither
-- revoked nor expired (checked by joining it on every use).
CREATE TABLE app_credentials (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    token_hash        bytea NOT NULL UNIQUE,
    user_id           bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    portal_session_id uuid REFERENCES portal_sessions ON DELETE CASCADE,
    session_id        uuid NOT NULL REFERENCES sessions ON DELETE CASCADE,
    app_host          text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz NOT NULL
);
CREATE INDEX app_credentials_expires ON app_credentials (expires_at);
CREATE INDEX app_credentials_portal ON app_credentials (portal_session_id);
