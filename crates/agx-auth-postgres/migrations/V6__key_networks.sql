-- The client networks a key may be used from (CIDR text, IPv4 or IPv6);
-- empty means any. Text rather than cidr[]: the store parses and checks
-- them, and old keys read as unlimited.
ALTER TABLE api_keys ADD COLUMN allowed_networks TEXT[] NOT NULL DEFAULT '{}';
