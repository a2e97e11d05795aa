-- Mark messages read for one reader and return the reader's unread count.
-- KEYS[1] meta, KEYS[2] messages zset, KEYS[3] id -> seq hash, KEYS[4] reader -> upto hash,
-- KEYS[5] this reader's set of single marks above upto.
-- ARGV[1] reader, ARGV[2] 'ids' or 'upto', ARGV[3..] ids, or one seq.
local meta, msgs, ids, uptos, marks = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local reader = ARGV[1]
local upto = tonumber(redis.call('HGET', uptos, reader) or '0')
if ARGV[2] == 'ids' then
  local seqs = {}
  for i = 3, #ARGV do
    local s = redis.call('HGET', ids, ARGV[i])
    if not s then return {'unknown', ARGV[i]} end
    seqs[#seqs + 1] = s
  end
  redis.call('HSETNX', uptos, reader, upto)
  for _, s in ipairs(seqs) do
    if tonumber(s) > upto then redis.call('SADD', marks, s) end
  end
else
  local last = tonumber(redis.call('HGET', meta, 'seq') or '0')
  local target = math.min(tonumber(ARGV[3]), last)
  if target > upto then
    upto = target
    redis.call('HSET', uptos, reader, upto)
    for _, s in ipairs(redis.call('SMEMBERS', marks)) do
      if tonumber(s) <= upto then redis.call('SREM', marks, s) end
    end
  end
end
local unread = redis.call('ZCOUNT', msgs, '(' .. upto, '+inf')
for _, s in ipairs(redis.call('SMEMBERS', marks)) do
  unread = unread - redis.call('ZCOUNT', msgs, s, s)
end
return {'ok', unread}
