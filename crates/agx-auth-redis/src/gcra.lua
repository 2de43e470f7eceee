-- GCRA for agx-auth: the arithmetic of agx_auth::gcra, run atomically where
-- the state lives. One cell per (key, endpoint class) holds its theoretical
-- arrival time (TAT) as decimal nanoseconds since the Unix epoch.
--
-- KEYS[1]  the cell
-- ARGV[1]  now, in nanoseconds since the epoch; '' to read the server's TIME
-- ARGV[2]  the emission interval T, in nanoseconds
-- ARGV[3]  the whole burst q * T, in nanoseconds
-- ARGV[4]  '1' to spend one request, '0' only to read the budget
-- ARGV[5]  slack added to the cell's expiry, in milliseconds
--
-- Returns {admitted (1 or 0), the TAT before this call, the now it used}, so
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

local tat = redis.call('GET', KEYS[1])
local used = 0
if tat then
  local tat_s, tat_n = split(tat)
  local ahead = (tat_s - now_s) * 1e9 + (tat_n - now_n)
  if ahead > 0 then
    used = ahead
  end
else
  tat = '0'
end

if ARGV[4] == '0' then
  return {0, tat, now}
end
local after = used + tonumber(ARGV[2])
if after > tonumber(ARGV[3]) then
  return {0, tat, now}
end

-- A cell whose TAT has passed means the same as no cell, so it expires then.
local total = now_n + after
local carry = math.floor(total / 1e9)
local new_tat = string.format('%d%09d', now_s + carry, total - carry * 1e9)
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(after / 1e6) + tonumber(ARGV[5]))
return {1, tat, now}
