-- Charge tokens already spent (a batch job's answered requests) to the tokens-per-day
-- window of one scope, on Redis's clock; 0 tokens only reads the window.
--
-- KEYS[1] tpd HASH (as in admit.lua: day -> day index, used -> tokens charged that day)
-- ARGV: tokens, tpd limit (-1 = unlimited), day (us)
-- Reply: {tokens used today, tokens remaining today (-1 = unlimited), us until the day ends}

local tokens = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local day_len = tonumber(ARGV[3])

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local day = math.floor(now / day_len)
local day_end = (day + 1) * day_len

local function int(x)
  return string.format('%d', x)
end

local used = 0
local record = redis.call('HMGET', KEYS[1], 'day', 'used')
if tonumber(record[1]) == day then used = tonumber(record[2]) or 0 end
if tokens > 0 then
  used = used + tokens
  redis.call('HSET', KEYS[1], 'day', int(day), 'used', int(used))
  redis.call('PEXPIRE', KEYS[1], int(math.ceil((day_end - now + day_len) / 1000) + 1000))
end
local remaining = -1
if limit >= 0 then remaining = math.max(0, limit - used) end
return {int(used), int(remaining), int(day_end - now)}
