-- How long each key was set to live when it was issued, so that a roll can
-- pass it on: a roll's grace period shortens expires_at, not this. Keys
-- issued before this column get expires_at - created_at, the best guess.
ALTER TABLE api_keys ADD COLUMN lifetime_ms BIGINT;
UPDATE api_keys SET lifetime_ms = (extract(epoch FROM expires_at - created_at) * 1000)::bigint
  WHERE expires_at IS NOT NULL AND expires_at >= created_at;
