-- Settle (or release) one admission: replace its token reservation by the real
-- usage in the minute and day windows and free its concurrency lease. The pending
-- entry is the idempotency key of the tokens: only the first settle or release of
-- an admission changes them, even after its lease expired.
--
-- The tokens used go into the ledgers too: the current minute's and the admission's day's
-- (a day that has ended takes nothing more, as for tokens per day).
--
-- KEYS[1] leases, KEYS[2] tpm, KEYS[3] tpm_amt, KEYS[4] tpm_sum, KEYS[5] tpd,
-- KEYS[6] pending, KEYS[7] use_min, KEYS[8] use_day (as in admit.lua)
-- ARGV: lease id, tokens used (0 releases the reservation), tokens reserved, day index,
--       model, window (us), day (us)
-- Reply: 1 settled now, 0 already settled, released or expired.

local lease_id = ARGV[1]
local used = tonumber(ARGV[2])
local reserved = tonumber(ARGV[3])

local function int(x)
  return string.format('%d', x)
end

local leased = redis.call('ZREM', KEYS[1], lease_id)
if redis.call('ZREM', KEYS[6], lease_id) == 0 then return leased end

local charged = tonumber(redis.call('HGET', KEYS[3], lease_id))
if charged then
  if used > 0 then
    redis.call('HSET', KEYS[3], lease_id, int(used))
  else
    redis.call('HDEL', KEYS[3], lease_id)
    redis.call('ZREM', KEYS[2], lease_id)
  end
  local sum = tonumber(redis.call('GET', KEYS[4]) or '0') + used - charged
  redis.call('SET', KEYS[4], int(math.max(0, sum)), 'KEEPTTL')
end

local record = redis.call('HMGET', KEYS[5], 'day', 'used')
if record[1] and record[1] == ARGV[4] then
  local day_used = (tonumber(record[2]) or 0) + used - reserved
  redis.call('HSET', KEYS[5], 'used', int(math.max(0, day_used)))
end

if used > 0 then
  local clock = redis.call('TIME')
  local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
  local window = tonumber(ARGV[6])
  local day_len = tonumber(ARGV[7])
  local counts = {'t:' .. ARGV[5], used}
  local minute = math.floor(now / window)
  ledger_add(KEYS[7], minute, (minute + 1) * window - now, counts)
  local day = tonumber(ARGV[4])
  if redis.call('HGET', KEYS[8], 'bucket') == ARGV[4] then
    ledger_add(KEYS[8], day, (day + 1) * day_len - now, counts)
  end
end
return 1
