-- Refusals that reached a known key, beside the requests it was admitted
-- for: 429s (rate_limited) and 403s for its scope, org, or an agent's
-- domains or state (refused). Rows from before count none.
ALTER TABLE key_usage ADD COLUMN rate_limited BIGINT NOT NULL DEFAULT 0;
ALTER TABLE key_usage ADD COLUMN refused BIGINT NOT NULL DEFAULT 0;
