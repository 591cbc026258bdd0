-- Virtual folders on shared storage, their sharing, and uploads in progress.

-- A project's POSIX group: its folders are owned by it (mode 2770). Optional
-- because projects existed before folders; a project without one cannot
-- have folders (creating one says to set it).
ALTER TABLE projects ADD COLUMN gid integer CHECK (gid > 0);

CREATE TABLE vfolders (
    -- Also its directory on the host (vf/<first two hex digits>/<hex>), so
    -- names never become paths.
    id              uuid PRIMARY KEY,
    name            text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    host            text NOT NULL,
    -- Owned by exactly one user or one project.
    user_id         bigint REFERENCES users ON DELETE RESTRICT,
    project_id      bigint REFERENCES projects ON DELETE RESTRICT,
    domain_id       bigint NOT NULL REFERENCES domains ON DELETE RESTRICT,
    usage_mode      text NOT NULL DEFAULT 'general' CHECK (usage_mode IN ('general', 'data', 'model')),
    -- What a project's members may do; a user folder's owner may do all.
    permission      text NOT NULL DEFAULT 'rw' CHECK (permission IN ('ro', 'rw', 'rw-delete')),
    quota_bytes     bigint CHECK (quota_bytes >= 0),
    -- Measured by the last scan and adjusted by every write through the API.
    usage_bytes     bigint NOT NULL DEFAULT 0 CHECK (usage_bytes >= 0),
    -- Promised to uploads in progress: a write reserves its bytes first, so
    -- concurrent writes cannot overshoot the quota together.
    reserved_bytes  bigint NOT NULL DEFAULT 0 CHECK (reserved_bytes >= 0),
    scanned_at      timestamptz,
    status          text NOT NULL DEFAULT 'ready' CHECK (status IN ('ready', 'deleting', 'error')),
    status_message  text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((user_id IS NULL) <> (project_id IS NULL))
);
CREATE UNIQUE INDEX vfolders_user_name    ON vfolders (user_id, name)    WHERE user_id IS NOT NULL;
CREATE UNIQUE INDEX vfolders_project_name ON vfolders (project_id, name) WHERE project_id IS NOT NULL;

-- A user folder shared with another user: an invitation until accepted.
-- A declined invitation is deleted, so it can be sent again.
CREATE TABLE vfolder_shares (
    vfolder_id  uuid NOT NULL REFERENCES vfolders ON DELETE CASCADE,
    user_id     bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    permission  text NOT NULL CHECK (permission IN ('ro', 'rw', 'rw-delete')),
    state       text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'accepted')),
    invited_by  bigint REFERENCES users ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    accepted_at timestamptz,
    PRIMARY KEY (vfolder_id, user_id)
);
CREATE INDEX vfolder_shares_user ON vfolder_shares (user_id);

-- Resumable uploads: the bytes are staged on the host (staging/<folder>/<id>),
-- whose size is the offset; this row says where they go and how many to expect.
CREATE TABLE vfolder_uploads (
    id          uuid PRIMARY KEY,
    vfolder_id  uuid NOT NULL REFERENCES vfolders ON DELETE CASCADE,
    user_id     bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    path        text NOT NULL,
    length      bigint NOT NULL CHECK (length >= 0),
    -- SHA-256 of the capability token in the upload's URL.
    token_hash  bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX vfolder_uploads_folder ON vfolder_uploads (vfolder_id);
