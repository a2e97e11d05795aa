-- Drop a stream's oldest records while it holds more than a length, or while they are older
-- than a time. Records start with their id, a ULID, whose first 10 characters are its creation
-- time in ms (Crockford base32), so age needs no decoding of the record itself.
-- KEYS[1] messages zset (score = seq), KEYS[2] id -> seq hash.
-- ARGV[1] max length (-1: no limit), ARGV[2] cutoff in ms (-1: no limit), ARGV[3] most records
-- this call removes. Returns how many were removed.
local msgs, ids = KEYS[1], KEYS[2]
local max_len, cutoff, budget = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local alphabet = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'
local value = {}
for i = 1, 32 do value[string.byte(alphabet, i)] = i - 1 end
local function created_ms(rec)
  local ms = 0
  for i = 1, 10 do ms = ms * 32 + (value[string.byte(rec, i)] or 0) end
  return ms
end

local removed = 0
local len = redis.call('ZCARD', msgs)
while removed < budget do
  local batch = redis.call('ZRANGE', msgs, 0, 99)
  if #batch == 0 then break end
  local take = 0
  for _, rec in ipairs(batch) do
    local over = max_len >= 0 and len - take > max_len
    local old = cutoff >= 0 and created_ms(rec) < cutoff
    if not (over or old) or removed + take >= budget then break end
    redis.call('HDEL', ids, string.sub(rec, 1, 26))
    take = take + 1
  end
  if take == 0 then break end
  redis.call('ZREMRANGEBYRANK', msgs, 0, take - 1)
  removed = removed + take
  len = len - take
  if take < #batch then break end
end
return removed
