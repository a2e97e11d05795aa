-- Store a durable subscription unless the same mailbox already subscribes to the same pattern.
-- KEYS[1] id -> JSON hash, KEYS[2] "<mailbox> <pattern>" -> id hash, KEYS[3] version counter.
-- ARGV[1] id, ARGV[2] index field, ARGV[3] JSON.
-- Returns {1, json} when stored now, {0, json} with the existing one otherwise.
local all, index, version = KEYS[1], KEYS[2], KEYS[3]
local existing = redis.call('HGET', index, ARGV[2])
if existing then
  local json = redis.call('HGET', all, existing)
  if json then return {0, json} end
end
redis.call('HSET', all, ARGV[1], ARGV[3])
redis.call('HSET', index, ARGV[2], ARGV[1])
redis.call('INCR', version)
return {1, ARGV[3]}
