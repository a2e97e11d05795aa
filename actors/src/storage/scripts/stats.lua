-- Counts of one mailbox for one reader.
-- KEYS[1] meta, KEYS[2] messages zset, KEYS[3] reader -> upto hash, KEYS[4] the reader's marks,
-- KEYS[5] in-flight zset, KEYS[6] awaiting-redelivery zset.
-- ARGV[1] reader. Returns {total, unread, seq, created_at_ms|false, max_len|false, overflow|false,
-- retention_seconds|false, pending_acks}.
local meta, msgs, uptos, marks = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local upto = redis.call('HGET', uptos, ARGV[1]) or '0'
local unread = redis.call('ZCOUNT', msgs, '(' .. upto, '+inf')
for _, s in ipairs(redis.call('SMEMBERS', marks)) do
  unread = unread - redis.call('ZCOUNT', msgs, s, s)
end
local m = redis.call('HMGET', meta, 'seq', 'created_at', 'max_len', 'overflow', 'retention_seconds')
local pending = redis.call('ZCARD', KEYS[5]) + redis.call('ZCARD', KEYS[6])
return {redis.call('ZCARD', msgs), unread, m[1] or '0', m[2], m[3], m[4], m[5], pending}
