-- Atomically append records to one mailbox.
-- KEYS[1] meta hash, KEYS[2] messages zset (score = seq, member = record), KEYS[3] id -> seq hash,
-- KEYS[4..] idempotency keys (same hash tag).
-- ARGV[1] default max length, ARGV[2] now (ms), ARGV[3] record count n,
-- then per record: id, record bytes, index into KEYS of its idempotency key (0 = none),
-- then optionally (topic histories): the default overflow, and '1' if the stream must exist.
-- Returns { results, evicted } where results[i] is {0, seq} (stored) or {1, seq, id} (duplicate)
-- and evicted is a flat list seq1, record1, seq2, record2...; or {"full", max_len}; or
-- {"missing"} when the stream must exist and does not.
local meta, msgs, ids = KEYS[1], KEYS[2], KEYS[3]
local n = tonumber(ARGV[3])
local tail = 4 + n * 3
if ARGV[tail + 1] == '1' and redis.call('HEXISTS', meta, 'created_at') == 0 then
  return {'missing'}
end
local max_len = tonumber(redis.call('HGET', meta, 'max_len') or ARGV[1])
local overflow = redis.call('HGET', meta, 'overflow') or ARGV[tail] or 'reject'

local prior = {}
local fresh = 0
for i = 0, n - 1 do
  local k = tonumber(ARGV[4 + i * 3 + 2])
  local prev = false
  if k > 0 then prev = redis.call('GET', KEYS[k]) end
  if prev then prior[i + 1] = prev else fresh = fresh + 1 end
end

local len = redis.call('ZCARD', msgs)
local evicted = {}
if len + fresh > max_len then
  if overflow ~= 'drop_oldest' or fresh > max_len then
    return {'full', max_len}
  end
  local popped = redis.call('ZPOPMIN', msgs, len + fresh - max_len)
  for j = 1, #popped, 2 do
    redis.call('HDEL', ids, string.sub(popped[j], 1, 26))
    evicted[#evicted + 1] = popped[j + 1]
    evicted[#evicted + 1] = popped[j]
  end
end

redis.call('HSETNX', meta, 'created_at', ARGV[2])
local results = {}
for i = 0, n - 1 do
  if prior[i + 1] then
    local sep = string.find(prior[i + 1], ':', 1, true)
    results[i + 1] = {1, tonumber(string.sub(prior[i + 1], sep + 1)), string.sub(prior[i + 1], 1, sep - 1)}
  else
    local id, rec, k = ARGV[4 + i * 3], ARGV[4 + i * 3 + 1], tonumber(ARGV[4 + i * 3 + 2])
    local seq = redis.call('HINCRBY', meta, 'seq', 1)
    redis.call('ZADD', msgs, seq, rec)
    redis.call('HSET', ids, id, seq)
    if k > 0 then redis.call('SET', KEYS[k], id .. ':' .. seq, 'EX', 86400) end
    results[i + 1] = {0, seq}
  end
end
return {results, evicted}
