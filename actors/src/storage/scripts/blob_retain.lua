-- Extends a blob's life, never shortening it. KEYS[1] = meta, KEYS[2] = data (one hash tag).
-- ARGV[1] = keep until (ms since the epoch), or "" to keep for good; ARGV[2] = now (ms).
-- Returns 0 if the blob does not exist (never uploaded, or expired), else 1.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
if ARGV[1] == '' then
  redis.call('PERSIST', KEYS[1])
  redis.call('PERSIST', KEYS[2])
  return 1
end
local want = tonumber(ARGV[1]) - tonumber(ARGV[2])
for _, key in ipairs(KEYS) do
  local ttl = redis.call('PTTL', key)
  -- -1: kept for good already; -2: no such key (an empty blob has no data).
  if ttl >= 0 and ttl < want then
    redis.call('PEXPIRE', key, want)
  end
end
return 1
