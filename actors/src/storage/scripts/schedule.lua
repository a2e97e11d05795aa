-- Move one retry-schedule entry, unless someone moved it since it was read.
-- KEYS[1] the schedule zset. ARGV[1] member, ARGV[2] the score it was read with,
-- ARGV[3] the new score, or '' to remove it. Returns 1 if applied.
local cur = redis.call('ZSCORE', KEYS[1], ARGV[1])
if cur and tonumber(cur) ~= tonumber(ARGV[2]) then return 0 end
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
end
return 1
