-- Which directory entry (LDAP DN) or provider subject (OIDC "sub") a user
-- first logged in as, per source. A user name is only what a directory or
-- provider says (OIDC's preferred_username is not even unique), so without
-- this anyone whose account there claimed "alice" would become alice. A
-- later login under the user's name from another subject is refused; an
-- administrator who knows the account really moved deletes the row.
CREATE TABLE sso_subjects (
    user_id    bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    source     text NOT NULL CHECK (source IN ('ldap', 'oidc')),
    subject    text NOT NULL CHECK (subject <> ''),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, source),
    -- One subject is one person: it cannot log in as two users.
    UNIQUE (source, subject)
);
