-- Atomically append records to one mailbox and make them receivable.
-- KEYS[1] meta hash, KEYS[2] messages zset (score = seq, member = record), KEYS[3] id -> seq hash,
-- KEYS[4] ready zset, KEYS[5] delivery meta hash (seq -> "rank:ack:expires_ms:attempts"),
-- KEYS[6] attempts hash (entries of earlier versions only), KEYS[7] in-flight zset,
-- KEYS[8] awaiting-redelivery zset, KEYS[9] dead-letter outbox hash,
-- KEYS[10..] idempotency keys (same hash tag).
-- ARGV[1] default max length, ARGV[2] now (ms), ARGV[3] record count n,
-- then per record: id, record bytes, index into KEYS of its idempotency key (0 = none),
-- priority rank (0 = urgent .. 3 = low), require_ack (0/1), expires_at ms (0 = never);
-- then optionally (topic histories): the default overflow, '1' if the stream must exist, and
-- '1' if the stream keeps no delivery state (KEYS[4..9] are then passed but never touched).
-- Returns { results, evicted, buried, sched } where results[i] is {0, seq} (stored) or
-- {1, seq, id} (duplicate: its idempotency key, or its message id, is already here); evicted is a flat list seq1, record1, seq2, record2...; buried is a
-- flat list seq, meta, record of evicted records that awaited an ack (now in the dead-letter
-- outbox, meta = "evicted|attempts|now|reason"); sched is a flat list seq, expires_at of stored
-- records that await an ack and expire. Or {"full", max_len}; or {"missing"} when the stream
-- must exist and does not.
local meta, msgs, ids, ready, dm, att, flight, wait, dead =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local n = tonumber(ARGV[3])
local W = 6
local tail = 4 + n * W
if ARGV[tail + 1] == '1' and redis.call('HEXISTS', meta, 'created_at') == 0 then
  return {'missing'}
end
local tracked = ARGV[tail + 2] ~= '1'
local max_len = tonumber(redis.call('HGET', meta, 'max_len') or ARGV[1])
local overflow = redis.call('HGET', meta, 'overflow') or ARGV[tail] or 'reject'

-- Redis calls from Lua cost about a microsecond each beyond their work: each kind of write is
-- one variadic call for the whole group (in chunks, as Lua's unpack has a stack limit).
local CHUNK = 1000
local function each_chunk(list, step, f)
  for i = 1, #list, CHUNK * step do
    f(unpack(list, i, math.min(i + CHUNK * step - 1, #list)))
  end
end
local function bulk(cmd, key, list)
  each_chunk(list, 2, function(...) redis.call(cmd, key, ...) end)
end

-- A message id the stream already holds (a spool replay, a retried write whose answer was
-- lost) is answered as a duplicate of itself, never stored twice.
local idlist = {}
for i = 0, n - 1 do idlist[i + 1] = ARGV[4 + i * W] end
local held = {}
each_chunk(idlist, 1, function(...)
  for _, at in ipairs(redis.call('HMGET', ids, ...)) do held[#held + 1] = at end
end)
local prior = {}
local fresh = 0
for i = 0, n - 1 do
  local id = idlist[i + 1]
  local k = tonumber(ARGV[4 + i * W + 2])
  local prev = false
  if k > 0 then prev = redis.call('GET', KEYS[k]) end
  if not prev and held[i + 1] then prev = id .. ':' .. held[i + 1] end
  if prev then prior[i + 1] = prev else fresh = fresh + 1 end
end

local len = redis.call('ZCARD', msgs)
local evicted, buried = {}, {}
if len + fresh > max_len then
  if overflow ~= 'drop_oldest' or fresh > max_len then
    return {'full', max_len}
  end
  local popped = redis.call('ZPOPMIN', msgs, len + fresh - max_len)
  for j = 1, #popped, 2 do
    local rec, seq = popped[j], popped[j + 1]
    redis.call('HDEL', ids, string.sub(rec, 1, 26))
    evicted[#evicted + 1] = seq
    evicted[#evicted + 1] = rec
    local m, tries = false, '0'
    if tracked then
      m = redis.call('HGET', dm, seq)
      -- Attempts are the dm entry's fourth field, or in att for an entry an earlier version
      -- wrote (see delivery.lua).
      tries = m and string.match(m, '^%d+:%d:%d+:(%d+)$') or redis.call('HGET', att, seq) or '0'
      redis.call('ZREM', ready, seq)
      redis.call('ZREM', flight, seq)
      redis.call('ZREM', wait, seq)
      redis.call('HDEL', att, seq)
      redis.call('HDEL', dm, seq)
    end
    if m and string.match(m, '^%d+:1:') then
      local line = 'evicted|' .. tries .. '|' .. ARGV[2] .. '|evicted by overflow = drop_oldest'
      redis.call('HSET', dead, seq, line, seq .. ':r', rec)
      buried[#buried + 1] = seq
      buried[#buried + 1] = line
      buried[#buried + 1] = rec
    end
  end
end

redis.call('HSETNX', meta, 'created_at', ARGV[2])
local results, sched = {}, {}
local zmsgs, hids, zready, hdm = {}, {}, {}, {}
-- One counter bump for the whole group: fresh records take the seqs after the old value, in order.
local next_seq = 1
if fresh > 0 then next_seq = redis.call('HINCRBY', meta, 'seq', fresh) - fresh + 1 end
for i = 0, n - 1 do
  if prior[i + 1] then
    local sep = string.find(prior[i + 1], ':', 1, true)
    results[i + 1] = {1, tonumber(string.sub(prior[i + 1], sep + 1)), string.sub(prior[i + 1], 1, sep - 1)}
  else
    local b = 4 + i * W
    local id, rec, k = ARGV[b], ARGV[b + 1], tonumber(ARGV[b + 2])
    local rank, ack, exp = ARGV[b + 3], ARGV[b + 4], ARGV[b + 5]
    local seq = next_seq
    next_seq = next_seq + 1
    -- The seq's text, made once with an integer conversion: a Lua number handed to redis.call
    -- is printed with '%.14g' (glibc's float printing) every time.
    local s = string.format('%d', seq)
    zmsgs[#zmsgs + 1] = s
    zmsgs[#zmsgs + 1] = rec
    hids[#hids + 1] = id
    hids[#hids + 1] = s
    if tracked then
      zready[#zready + 1] = string.format('%d', tonumber(rank) * 1e13 + seq)
      zready[#zready + 1] = s
      -- A message that needs no ack and never expires gets no entry: while it is in ready it
      -- is receivable, and once handed over it is done (see meta() in delivery.lua).
      if ack == '1' or exp ~= '0' then
        hdm[#hdm + 1] = s
        hdm[#hdm + 1] = rank .. ':' .. ack .. ':' .. exp .. ':0'
      end
      if ack == '1' and exp ~= '0' then
        sched[#sched + 1] = seq
        sched[#sched + 1] = exp
      end
    end
    if k > 0 then redis.call('SET', KEYS[k], id .. ':' .. s, 'EX', 86400) end
    results[i + 1] = {0, seq}
  end
end
bulk('ZADD', msgs, zmsgs)
bulk('HSET', ids, hids)
bulk('ZADD', ready, zready)
bulk('HSET', dm, hdm)
return {results, evicted, buried, sched}
