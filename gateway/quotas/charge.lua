-- Charge tokens already spent (a batch job's answered requests) to the tokens-per-day
-- window of one scope, on Redis's clock; 0 tokens only reads the window.
--
-- With a second key, the tokens are an account's total: everything one batch job has
-- spent in this scope so far. The account's record (KEYS[2]) holds what it was charged;
-- only what the total exceeds it by is added to the day, and the record becomes the
-- total in this same call, so charging a total again (a resumed job) adds nothing and
-- a total below the record takes nothing back.
--
-- What a call adds goes into the scope's ledgers as batch tokens of ARGV[5]'s model.
--
-- KEYS[1] tpd HASH (as in admit.lua: day -> day index, used -> tokens charged that day)
-- KEYS[2] use_min, KEYS[3] use_day HASH (the ledgers, as in admit.lua)
-- KEYS[4] (optional) the account's record STRING: tokens it was charged in this scope
-- ARGV: tokens, tpd limit (-1 = unlimited), day (us), record ttl (ms, with KEYS[4]),
--       model, window (us)
-- Reply: {tokens used today, tokens remaining today (-1 = unlimited), us until the day
--         ends, tokens this call added}

local tokens = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local day_len = tonumber(ARGV[3])

local function int(x)
  return string.format('%d', x)
end

if #KEYS > 3 then
  local charged = tonumber(redis.call('GET', KEYS[4]) or '0')
  if tokens > charged then
    redis.call('SET', KEYS[4], int(tokens), 'PX', ARGV[4])
  else
    redis.call('PEXPIRE', KEYS[4], ARGV[4])
  end
  tokens = math.max(0, tokens - charged)
end

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local day = math.floor(now / day_len)
local day_end = (day + 1) * day_len

local used = 0
local record = redis.call('HMGET', KEYS[1], 'day', 'used')
if tonumber(record[1]) == day then used = tonumber(record[2]) or 0 end
if tokens > 0 then
  used = used + tokens
  redis.call('HSET', KEYS[1], 'day', int(day), 'used', int(used))
  redis.call('PEXPIRE', KEYS[1], int(math.ceil((day_end - now + day_len) / 1000) + 1000))
  local counts = {'t:' .. ARGV[5], tokens, 'b:' .. ARGV[5], tokens}
  local window = tonumber(ARGV[6])
  local minute = math.floor(now / window)
  ledger_add(KEYS[2], minute, (minute + 1) * window - now, counts)
  ledger_add(KEYS[3], day, day_end - now, counts)
end
local remaining = -1
if limit >= 0 then remaining = math.max(0, limit - used) end
return {int(used), int(remaining), int(day_end - now), int(tokens)}
