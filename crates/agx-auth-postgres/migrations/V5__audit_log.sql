-- The audit log: who changed what of an organization, and when. Never a
-- key: a change holds field names and their new values as text. seq orders
-- the log and is the paging cursor.
CREATE TABLE audit_events (
    seq        BIGSERIAL PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES organizations (id),
    at         TIMESTAMPTZ NOT NULL,
    actor      TEXT NOT NULL,
    actor_id   TEXT,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    fields     TEXT[] NOT NULL DEFAULT '{}',
    "values"   TEXT[] NOT NULL DEFAULT '{}',
    CHECK (cardinality(fields) = cardinality("values"))
);

CREATE INDEX audit_events_by_org ON audit_events (org_id, seq DESC);
