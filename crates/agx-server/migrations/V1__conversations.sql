-- The public API's conversations (the server's own data, not agx-auth's).
CREATE TABLE conversations (
    id          TEXT PRIMARY KEY,
    owner_id    TEXT NOT NULL,
    session_id  TEXT NOT NULL,
    owner_name  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    metadata    JSONB NOT NULL DEFAULT '{}',
    UNIQUE (owner_id, session_id)
);

CREATE TABLE conversation_messages (
    seq              BIGSERIAL PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    conversation_id  TEXT NOT NULL REFERENCES conversations (id),
    role             TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content          TEXT NOT NULL,
    at               TIMESTAMPTZ NOT NULL
);

CREATE INDEX conversation_messages_by_conversation ON conversation_messages (conversation_id, at, seq);
