-- Device logins (RFC 8628 shape, bridge/devicelogin.go): a CLI on a host
-- without a browser asks for a login, a person approves it in the portal,
-- and the CLI's poll then mints a keypair for that person, once.
--
-- Both codes are credentials until the login ends, so only their SHA-256 is
-- stored: a leaked database dump cannot finish someone's pending login.

CREATE TABLE device_logins (
    device_code_hash bytea PRIMARY KEY,
    -- Of the normalised user code (upper case, no separator).
    user_code_hash   bytea NOT NULL UNIQUE,
    -- What the client says it is ("slurmgate CLI on login1"): shown to the
    -- approver and the new keypair's description. Client-supplied, so the
    -- portal shows it as text only.
    client           text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    -- The slowest a client may poll; slow_down below it.
    interval_s       integer NOT NULL CHECK (interval_s > 0),
    last_polled_at   timestamptz,
    -- Who decided, and how; the keypair goes to the approver.
    decided_by       bigint REFERENCES users ON DELETE CASCADE,
    allowed          boolean,
    decided_at       timestamptz,
    -- Set when the poll that minted the keypair took it: never twice.
    consumed_at      timestamptz
);
CREATE INDEX device_logins_expires ON device_logins (expires_at);
