-- Delivery state of one mailbox: receive, redeliver (receive only what was handed over before),
-- take (hand over given seqs), ack, nack, settle (what the
-- retry scheduler does when an entry falls due), retract (batch rollback).
-- KEYS[1] messages zset, KEYS[2] ready zset (score = rank * 1e13 + seq), KEYS[3] delivery meta
-- hash (seq -> "rank:ack:expires_ms:attempts"), KEYS[4] attempts hash (only entries written by
-- earlier versions, whose meta has no attempts field), KEYS[5] in-flight zset
-- (score = ack deadline ms), KEYS[6] awaiting-redelivery zset (score = due ms),
-- KEYS[7] dead-letter outbox hash, KEYS[8] id -> seq hash, and on a single Redis KEYS[9] the
-- global retry schedule (zset "<mailbox>\n<seq>" by due ms).
-- ARGV[1] op, ARGV[2] now ms, ARGV[3] ack deadline ms, ARGV[4] max attempts, ARGV[5] backoff
-- base ms, ARGV[6] multiplier, ARGV[7] backoff cap ms, ARGV[8] jitter factor, ARGV[9] the
-- mailbox's name (for schedule members), ARGV[10..] per op.
-- With KEYS[9] the script keeps the schedule of what it hands over and acks itself (one round
-- trip); without it (a cluster, where the schedule lives in another slot) it returns the
-- entries to add, and the caller adds them and removes acked ones in a second step.
-- Returns {result, buried} where buried is a flat list seq, meta, record of the dead letters this
-- call put in the outbox (meta = "reason|attempts|failed_at_ms|last_error").
local msgs, ready, dm, att, flight, wait, dead, ids =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local op = ARGV[1]
local now = tonumber(ARGV[2])
local deadline = tonumber(ARGV[3])
-- Numbers passed to redis.call are turned into text by Lua's '%.14g' (glibc's float printing,
-- ~5 % of Redis's CPU in `bench ack`): the text of a number is passed as it came, or made with
-- '%d' (an integer conversion).
local deadline_text = ARGV[3]
local max_attempts = tonumber(ARGV[4])
local base, mult, cap, jitter = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local buried = {}
local retry = KEYS[9]
local function member(seq)
  return ARGV[9] .. '\n' .. seq
end

-- rank, ack required, expires_at ms and attempts made of an unsettled message, from its dm
-- entry; nil once it is settled. The attempts live in the entry itself (one call reads them
-- all); an entry an earlier version wrote has three fields and its attempts in `att` (the
-- fourth result is then nil, see attempts_of).
local function parse(m)
  local r, a, e, n = string.match(m, '^(%d+):(%d):(%d+):?(%d*)$')
  if not r then return nil end
  return tonumber(r), a == '1', tonumber(e), tonumber(n)
end

local function attempts_of(seq, n)
  if n then return n end
  return tonumber(redis.call('HGET', att, seq) or '0')
end

-- A message that needs no ack and never expires has no dm entry: it is unsettled while it is
-- in ready, and never has attempts.
local function meta(seq)
  local m = redis.call('HGET', dm, seq)
  if not m then
    local score = redis.call('ZSCORE', ready, seq)
    if not score then return nil end
    return math.floor(tonumber(score) / 1e13), false, 0, 0
  end
  local rank, ack, exp, n = parse(m)
  if not rank then return nil end
  return rank, ack, exp, attempts_of(seq, n)
end

local function attempts(seq)
  local m = redis.call('HGET', dm, seq)
  if not m then return 0 end
  local _, _, _, n = parse(m)
  return attempts_of(seq, n)
end

local function record(seq)
  return redis.call('ZRANGEBYSCORE', msgs, seq, seq)[1]
end

-- A seq is in at most one of flight, wait and ready (every move takes it out of one before it
-- enters another), so the first removal that finds it ends the search: an ack, the usual case,
-- costs one ZREM rather than three.
-- `has_att` is false when the caller knows the message has no `att` entry (its attempts are in
-- its dm entry); left out, the entry is dropped in case an earlier version wrote one.
local function forget(seq, has_att)
  if redis.call('ZREM', flight, seq) == 0 and redis.call('ZREM', wait, seq) == 0 then
    redis.call('ZREM', ready, seq)
  end
  if has_att ~= false then redis.call('HDEL', att, seq) end
  redis.call('HDEL', dm, seq)
end

local function bury(seq, reason, n, err)
  local rec = record(seq)
  forget(seq)
  if not rec then return end
  local m = reason .. '|' .. n .. '|' .. ARGV[2] .. '|' .. err
  redis.call('HSET', dead, seq, m, seq .. ':r', rec)
  buried[#buried + 1] = seq
  buried[#buried + 1] = m
  buried[#buried + 1] = rec
end

local function backoff(n)
  local d = base * mult ^ (n - 1) * jitter
  if d > cap then d = cap end
  return math.floor(d)
end

local function score(rank, seq)
  return string.format('%d', rank * 1e13 + tonumber(seq))
end

-- Hands `seq` over once if it is in ready (taking it out). Appends seq, attempt, record to
-- `got`, and seq, deadline to `sched` when an ack is awaited. Without a dm entry a message needs
-- no ack and never expires (its rank is not needed here).
local function hand(seq, got, sched)
  if redis.call('ZREM', ready, seq) == 0 then return end
  local rank, ack, exp, was = 2, false, 0, 0
  local m = redis.call('HGET', dm, seq)
  if m then rank, ack, exp, was = parse(m) end
  if not rank then return end
  if exp > 0 and exp <= now then
    if ack then bury(seq, 'expired', attempts_of(seq, was), 'ttl passed before delivery') else forget(seq) end
    return
  end
  local rec = record(seq)
  if not rec then
    forget(seq)
    return
  end
  if ack then
    local n = attempts_of(seq, was) + 1
    redis.call('HSET', dm, seq, string.format('%d:1:%d:%d', rank, exp, n))
    if not was then redis.call('HDEL', att, seq) end
    redis.call('ZADD', flight, deadline_text, seq)
    if retry then
      redis.call('ZADD', retry, 'LT', deadline_text, member(seq))
    else
      sched[#sched + 1] = seq
      sched[#sched + 1] = deadline
    end
    got[#got + 1] = seq
    got[#got + 1] = n
    got[#got + 1] = rec
  else
    -- Handed over once and done. It left ready above, never had attempts, and has a dm entry
    -- only if it expires (see append.lua).
    if exp > 0 then redis.call('HDEL', dm, seq) end
    got[#got + 1] = seq
    got[#got + 1] = 1
    got[#got + 1] = rec
  end
end

-- The message named by ARGV[10] if it awaits an ack: its seq, attempts and whether it still
-- has an `att` entry (written by an earlier version), or an error reply.
local function pending(id)
  local seq = redis.call('HGET', ids, id)
  if not seq then return nil, {'unknown'} end
  local m = redis.call('HGET', dm, seq)
  local unsettled, n, legacy = false, 0, false
  if m then
    local rank, ack, exp, was = parse(m)
    unsettled, legacy = rank ~= nil, was == nil
    if unsettled then n = attempts_of(seq, was) end
  else
    unsettled = redis.call('ZSCORE', ready, seq) ~= false
  end
  if not unsettled then return nil, {'settled'} end
  if n == 0 then return nil, {'undelivered'} end
  return seq, n, legacy
end

if op == 'receive' then
  local max, scan = tonumber(ARGV[10]), tonumber(ARGV[11])
  local got, sched = {}, {}
  local looked = 0
  while #got < max * 3 and looked < scan do
    local top = redis.call('ZRANGE', ready, 0, max - #got / 3 - 1)
    if #top == 0 then break end
    for _, seq in ipairs(top) do
      looked = looked + 1
      hand(seq, got, sched)
    end
  end
  return {{got, sched}, buried}
elseif op == 'redeliver' then
  -- Like receive, but only messages handed over before (attempts > 0): redeliveries.
  local max, scan = tonumber(ARGV[10]), tonumber(ARGV[11])
  local got, sched = {}, {}
  for _, seq in ipairs(redis.call('ZRANGE', ready, 0, scan - 1)) do
    if #got >= max * 3 then break end
    if attempts(seq) > 0 then hand(seq, got, sched) end
  end
  return {{got, sched}, buried}
elseif op == 'take' then
  local got, sched = {}, {}
  for i = 10, #ARGV do
    hand(ARGV[i], got, sched)
  end
  return {{got, sched}, buried}
elseif op == 'ack' then
  local seq, n, has_att = pending(ARGV[10])
  if not seq then return {n, buried} end
  forget(seq, has_att)
  if retry then redis.call('ZREM', retry, member(seq)) end
  return {{'ok', seq, n}, buried}
elseif op == 'nack' then
  local seq, n = pending(ARGV[10])
  if not seq then return {n, buried} end
  local reason = ARGV[12]
  if ARGV[11] ~= '1' then
    bury(seq, 'rejected', n, reason)
    return {{'dead', seq, n, 'rejected'}, buried}
  end
  if n >= max_attempts then
    bury(seq, 'max_attempts', n, reason)
    return {{'dead', seq, n, 'max_attempts'}, buried}
  end
  redis.call('ZREM', flight, seq)
  redis.call('ZREM', ready, seq)
  local due = now + backoff(n)
  redis.call('ZADD', wait, string.format('%d', due), seq)
  return {{'requeued', seq, n, due}, buried}
elseif op == 'settle' then
  -- Returns {'gone'} (nothing more is due), {'later', due}, {'ready'} or {'ready', due}
  -- (receivable again; `due` is its expiry), {'dead'}.
  local seq = ARGV[10]
  local rank, ack, exp, tries = meta(seq)
  if not rank then return {{'gone'}, buried} end
  local expired = exp > 0 and exp <= now
  local fl = redis.call('ZSCORE', flight, seq)
  local wt = redis.call('ZSCORE', wait, seq)
  if fl then
    if tonumber(fl) > now then return {{'later', fl}, buried} end
    local n = tries
    if expired then
      bury(seq, 'expired', n, 'ttl passed while awaiting an ack')
      return {{'dead'}, buried}
    end
    if n >= max_attempts then
      bury(seq, 'max_attempts', n, 'not acked within the ack timeout (attempt ' .. n .. ')')
      return {{'dead'}, buried}
    end
    redis.call('ZREM', flight, seq)
    local due = now + backoff(n)
    redis.call('ZADD', wait, string.format('%d', due), seq)
    return {{'later', due}, buried}
  elseif wt then
    if tonumber(wt) > now then return {{'later', wt}, buried} end
    if expired then
      bury(seq, 'expired', tries, 'ttl passed before redelivery')
      return {{'dead'}, buried}
    end
    redis.call('ZREM', wait, seq)
    redis.call('ZADD', ready, score(rank, seq), seq)
    if ack and exp > 0 then return {{'ready', exp}, buried} end
    return {{'ready'}, buried}
  elseif redis.call('ZSCORE', ready, seq) and ack and exp > 0 then
    if not expired then return {{'later', exp}, buried} end
    bury(seq, 'expired', tries, 'ttl passed before delivery')
    return {{'dead'}, buried}
  end
  return {{'gone'}, buried}
elseif op == 'retract' then
  -- Removes records a failed batch stored (by id; only the seq they were stored at).
  local n = 0
  for i = 10, #ARGV, 2 do
    local id, seq = ARGV[i], ARGV[i + 1]
    if redis.call('HGET', ids, id) == seq then
      forget(seq)
      redis.call('HDEL', ids, id)
      n = n + redis.call('ZREMRANGEBYSCORE', msgs, seq, seq)
    end
  end
  return {n, buried}
end
return redis.error_reply('unknown delivery op ' .. tostring(op))
