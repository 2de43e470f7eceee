-- Usage credits for agx-auth: the arithmetic of agx_auth::spend_credits,
-- run atomically where the cell lives. One cell per credit account (a hash:
-- p = the refill period it was last spent in, s = what was spent in it).
--
-- KEYS[1]  the cell
-- ARGV[1]  the refill period now, by the caller's clock
-- ARGV[2]  the initial credits (what period 0 holds)
-- ARGV[3]  the refill's amount (what each later period holds); '' for none
-- ARGV[4]  the cost to spend; '0' only reads what is left
-- ARGV[5]  milliseconds the cell must live after a spend (until the caller's
--          period ends, and some slack); '' for a cell that must never
--          expire. Set only when the cell's period is the caller's: a caller
--          whose clock is behind must not cut short a later period's cell,
--          whose loss would grant that period's refill again.
--
-- Returns {1 if spent, else 0; what is left after}. A cost is spent whole
-- or not at all. Counts stay below 2^53, where Lua's doubles are exact,
-- and are written with %d so that none is stored in exponent form.

local period = tonumber(ARGV[1])
local initial = tonumber(ARGV[2])
local amount = nil
if ARGV[3] ~= '' then
  amount = tonumber(ARGV[3])
end
local cost = tonumber(ARGV[4])

local cell = redis.call('HMGET', KEYS[1], 'p', 's')
local p = tonumber(cell[1] or '0')
local s = tonumber(cell[2] or '0')
-- A later period of an account with a refill starts afresh; an earlier one
-- (a caller whose clock is behind) is the cell's own.
if amount and period > p then
  p = period
  s = 0
end
local allowance = initial
if amount and p > 0 then
  allowance = amount
end
local remaining = allowance - s
if remaining < 0 then
  remaining = 0
end
if cost == 0 or remaining < cost then
  return {0, remaining}
end
redis.call('HSET', KEYS[1], 'p', string.format('%d', p), 's', string.format('%d', s + cost))
if ARGV[5] ~= '' and p == period then
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
end
return {1, remaining - cost}
