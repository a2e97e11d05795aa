-- GCRA rate limit: one key per agent holding its theoretical arrival time (TAT, ms).
-- KEYS[1] rate key; ARGV[1] n (cost), ARGV[2] emission interval (ms per token), ARGV[3] burst.
-- Answers 0 when allowed (and records it), else the milliseconds until it would be allowed.
-- Redis's own clock is used, so every node agrees on "now".
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local n = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then
  tat = now
end
local new_tat = tat + n * interval
local allow_at = new_tat - burst * interval
if allow_at > now then
  return math.max(1, math.ceil(allow_at - now))
end
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1000)
return 0
