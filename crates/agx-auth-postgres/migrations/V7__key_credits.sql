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
