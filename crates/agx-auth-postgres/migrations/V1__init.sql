-- Organizations, agents and teams: what the policy asks about.
CREATE TABLE organizations (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE agents (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organizations (id),
    name             TEXT NOT NULL,
    allowed_domains  TEXT[] NOT NULL DEFAULT '{}',
    active           BOOLEAN NOT NULL DEFAULT TRUE,
    public           BOOLEAN NOT NULL DEFAULT TRUE,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE teams (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations (id),
    name        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE team_agents (
    team_id   TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    agent_id  TEXT NOT NULL REFERENCES agents (id),
    position  INTEGER NOT NULL,
    PRIMARY KEY (team_id, agent_id)
);

-- Keys: only the hash is stored. Deleted keys stay, for audit.
CREATE TABLE api_keys (
    id                  TEXT PRIMARY KEY,
    org_id              TEXT NOT NULL REFERENCES organizations (id),
    name                TEXT NOT NULL,
    hash                BYTEA NOT NULL UNIQUE,
    prefix              TEXT NOT NULL,
    scopes              TEXT[] NOT NULL DEFAULT '{}',
    mode                TEXT NOT NULL CHECK (mode IN ('live', 'test')),
    created_at          TIMESTAMPTZ NOT NULL,
    expires_at          TIMESTAMPTZ,
    deleted_at          TIMESTAMPTZ,
    rate_limit_classes  TEXT[] NOT NULL DEFAULT '{}',
    rate_limit_quotas   INTEGER[] NOT NULL DEFAULT '{}',
    last_used_at        TIMESTAMPTZ,
    CHECK (cardinality(rate_limit_classes) = cardinality(rate_limit_quotas))
);

CREATE INDEX api_keys_by_org ON api_keys (org_id, created_at) WHERE deleted_at IS NULL;

-- Usage, aggregated in memory and flushed in batches.
CREATE TABLE key_usage (
    key_id    TEXT NOT NULL REFERENCES api_keys (id),
    day       DATE NOT NULL,
    class     TEXT NOT NULL,
    requests  BIGINT NOT NULL,
    PRIMARY KEY (key_id, day, class)
);
