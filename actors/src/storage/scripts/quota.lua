-- Per-day quota of one agent. KEYS[1] hash of the day (fields m: messages, b: bytes).
-- ARGV: messages to add, bytes to add, cap on messages (0: none), cap on bytes (0: none),
-- seconds to keep the counters. Answers 0 (added), 1 (over the message cap), 2 (over bytes).
local m = tonumber(redis.call('HGET', KEYS[1], 'm') or 0)
local b = tonumber(redis.call('HGET', KEYS[1], 'b') or 0)
local add_m, add_b = tonumber(ARGV[1]), tonumber(ARGV[2])
local cap_m, cap_b = tonumber(ARGV[3]), tonumber(ARGV[4])
if cap_m > 0 and m + add_m > cap_m then
  return 1
end
if cap_b > 0 and b + add_b > cap_b then
  return 2
end
redis.call('HINCRBY', KEYS[1], 'm', add_m)
redis.call('HINCRBY', KEYS[1], 'b', add_b)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5]))
return 0
