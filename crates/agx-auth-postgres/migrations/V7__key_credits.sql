-- Lineage: the first key of a key's rolls (a fresh key is its own). A
-- change of credits is made to every live key of a lineage, so a key in its
-- grace period and its replacement spend one balance.
ALTER TABLE api_keys ADD COLUMN lineage TEXT;
UPDATE api_keys SET lineage = id;
ALTER TABLE api_keys ALTER COLUMN lineage SET NOT NULL;
CREATE INDEX api_keys_lineage ON api_keys (org_id, lineage) WHERE deleted_at IS NULL;

-- Usage credits: NULL initial means the key is not counted. The account's
-- start is kept in milliseconds since the epoch, as every instance names
-- the ledger cell from it; the pool is the id of the key the credits were
-- first given to (a roll passes it on). All five are set together, and a
-- refill has both its amount and its interval or neither. Counts are at
-- most 2^53 - 1, the bound the store reads back.
ALTER TABLE api_keys
    ADD COLUMN credits_initial BIGINT,
    ADD COLUMN credits_refill_amount BIGINT,
    ADD COLUMN credits_refill_ms BIGINT,
    ADD COLUMN credits_pool TEXT,
    ADD COLUMN credits_since_ms BIGINT,
    ADD CONSTRAINT credits_whole CHECK (
        (credits_initial IS NULL AND credits_pool IS NULL AND credits_since_ms IS NULL
            AND credits_refill_amount IS NULL)
        OR (credits_initial BETWEEN 0 AND 9007199254740991 AND credits_pool IS NOT NULL
            AND credits_since_ms IS NOT NULL)),
    ADD CONSTRAINT credits_refill_whole CHECK (
        (credits_refill_amount IS NULL) = (credits_refill_ms IS NULL)
        AND (credits_refill_amount IS NULL
            OR (credits_refill_amount BETWEEN 0 AND 9007199254740991 AND credits_refill_ms > 0)));
