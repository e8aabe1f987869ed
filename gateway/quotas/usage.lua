-- Read one scope's usage, changing nothing: the quota windows' figures (as admit.lua
-- would see them now) and the ledgers of the current minute and day (ledger.lua).
--
-- KEYS[1] rpm, KEYS[2] tpm, KEYS[3] tpm_amt, KEYS[4] leases, KEYS[5] tpd,
-- KEYS[6] use_min, KEYS[7] use_day (as in admit.lua)
-- ARGV: window (us), day (us)
--
-- Reply: {now_us, minute index, day index, requests in the window, us until the request
--         log is empty, tokens in the window, us until the token log is empty, tokens
--         today, leases held, minute ledger (HGETALL, flat), day ledger (flat)}
-- A window's figures are 0 for a log that is not kept (its limit unset).

local window = tonumber(ARGV[1])
local day_len = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local horizon = now - window
local minute = math.floor(now / window)
local day = math.floor(now / day_len)

local function int(x)
  return string.format('%d', x)
end

local function empties_in(key)
  local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if #newest == 0 then return 0 end
  return math.max(0, tonumber(newest[2]) + window - now)
end

local requests = redis.call('ZCOUNT', KEYS[1], '(' .. int(horizon), '+inf')
local tokens = 0
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. int(horizon), '+inf')
for start = 1, #ids, 500 do
  local chunk = {unpack(ids, start, math.min(start + 499, #ids))}
  for _, amount in ipairs(redis.call('HMGET', KEYS[3], unpack(chunk))) do
    tokens = tokens + (tonumber(amount) or 0)
  end
end
local today = 0
local record = redis.call('HMGET', KEYS[5], 'day', 'used')
if tonumber(record[1]) == day then today = tonumber(record[2]) or 0 end
local held = redis.call('ZCOUNT', KEYS[4], '(' .. int(now), '+inf')

local function ledger(key, bucket)
  if redis.call('HGET', key, 'bucket') ~= int(bucket) then return {} end
  return redis.call('HGETALL', key)
end

return {int(now), int(minute), int(day), requests, int(empties_in(KEYS[1])), int(tokens),
        int(empties_in(KEYS[2])), int(today), held, ledger(KEYS[6], minute),
        ledger(KEYS[7], day)}
