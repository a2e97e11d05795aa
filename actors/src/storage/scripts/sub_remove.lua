-- Remove a durable subscription.
-- KEYS[1] id -> JSON hash, KEYS[2] "<mailbox> <pattern>" -> id hash, KEYS[3] version counter.
-- ARGV[1] id. Returns the removed JSON, or false if there was none.
local all, index, version = KEYS[1], KEYS[2], KEYS[3]
local json = redis.call('HGET', all, ARGV[1])
if not json then return false end
local sub = cjson.decode(json)
redis.call('HDEL', all, ARGV[1])
if redis.call('HGET', index, sub.mailbox .. ' ' .. sub.pattern) == ARGV[1] then
  redis.call('HDEL', index, sub.mailbox .. ' ' .. sub.pattern)
end
redis.call('INCR', version)
return json
