-- GCRA for agx-auth: the arithmetic of agx_auth::gcra, run atomically where
-- the state lives. One cell per (key, endpoint class) holds its theoretical
-- arrival time (TAT) as decimal nanoseconds since the Unix epoch.
--
-- KEYS[1]  the cell
-- ARGV[1]  now, in nanoseconds since the epoch; '' to read the server's TIME
-- ARGV[2]  the emission interval T, in nanoseconds
-- ARGV[3]  the whole burst q * T, in nanoseconds
-- ARGV[4]  how many slots to spend: '0' only reads the budget, '1' is one
--          request, n > 1 asks for a lease of up to n slots (the caller's
--          own first), of which at most a quarter of the slots still free
--          beyond the caller's are granted
-- ARGV[5]  slack added to the cell's expiry, in milliseconds
-- ARGV[6]  slots of an ended lease to hand back first (moves the TAT back
--          by that many intervals, never before now); absent means 0
--
-- Returns {slots granted (0 when refused), the TAT before this call, the now
-- it used}, so
-- that the caller derives the decision and the RateLimit fields with the
-- core's own functions from the same two numbers.
--
-- Lua numbers are doubles, exact below 2^53 (104 days in nanoseconds), so
-- times are split into seconds and nanoseconds, and only differences, which
-- are bounded by the burst, are computed as single numbers.

local function split(t)
  local n = #t
  if n <= 9 then
    return 0, tonumber(t)
  end
  return tonumber(string.sub(t, 1, n - 9)), tonumber(string.sub(t, n - 8))
end

local now_s, now_n
if ARGV[1] == '' then
  local time = redis.call('TIME')
  now_s, now_n = tonumber(time[1]), tonumber(time[2]) * 1000
else
  now_s, now_n = split(ARGV[1])
end
local now = string.format('%d%09d', now_s, now_n)

-- now + ns (0 <= ns, below 2^53) as decimal nanoseconds.
local function plus(ns)
  local total = now_n + ns
  local carry = math.floor(total / 1e9)
  return string.format('%d%09d', now_s + carry, total - carry * 1e9)
end

local interval = tonumber(ARGV[2])
local back = tonumber(ARGV[6] or '0') * interval
local tat = redis.call('GET', KEYS[1])
local used = 0
if tat then
  local tat_s, tat_n = split(tat)
  local ahead = (tat_s - now_s) * 1e9 + (tat_n - now_n)
  if back > 0 then
    ahead = ahead - back
    tat = ahead > 0 and plus(ahead) or '0'
  end
  if ahead > 0 then
    used = ahead
  end
else
  tat = '0'
end

local want = tonumber(ARGV[4])
if want == 0 then
  return {0, tat, now}
end
local burst = tonumber(ARGV[3])
local after = used + interval
if after > burst then
  return {0, tat, now}
end
local granted = 1
if want > 1 then
  local extra = math.min(want - 1, math.floor(math.floor((burst - after) / interval) / 4))
  if extra > 0 then
    granted = granted + extra
    after = after + extra * interval
  end
end

-- A cell whose TAT has passed means the same as no cell, so it expires then.
redis.call('SET', KEYS[1], plus(after), 'PX', math.ceil(after / 1e6) + tonumber(ARGV[5]))
return {granted, tat, now}
