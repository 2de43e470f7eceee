-- Usage batches already added to key_usage, by id: a flush retried after
-- its reply was lost (the statement may have committed) adds nothing twice.
-- The flush itself prunes ids older than a week.
CREATE TABLE usage_batches (
    id          TEXT PRIMARY KEY,
    flushed_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX usage_batches_by_age ON usage_batches (flushed_at);
