-- The dashboard's sign-in: org dashboard tokens and sessions. Both are kept
-- as SHA-256 hashes only: a copy of these tables signs nobody in.
CREATE TABLE dashboard_tokens (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL,
    name        TEXT NOT NULL,
    hash        BYTEA NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX dashboard_tokens_org ON dashboard_tokens (org_id);

-- A session: every org (org_id NULL, signed in with the admin token) or one
-- org, through one dashboard token; deleting the token ends its sessions.
CREATE TABLE dashboard_sessions (
    hash        BYTEA PRIMARY KEY,
    org_id      TEXT,
    token_id    TEXT REFERENCES dashboard_tokens (id) ON DELETE CASCADE,
    csrf        TEXT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX dashboard_sessions_expiry ON dashboard_sessions (expires_at);
