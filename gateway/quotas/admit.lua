-- One admission: check and take requests-per-minute, a token reservation
-- (per minute and per day) and a concurrency lease, atomically, on Redis's clock.
--
-- KEYS[1] rpm     ZSET  lease id -> admission time (us): the sliding request log
-- KEYS[2] tpm     ZSET  lease id -> admission time (us): the sliding token log
-- KEYS[3] tpm_amt HASH  lease id -> tokens charged (reserved, then settled)
-- KEYS[4] tpm_sum STRING the sum of KEYS[3] for entries still in the window
-- KEYS[5] leases  ZSET  lease id -> lease expiry (us); always kept
-- KEYS[6] tpd     HASH  day -> day index, used -> tokens charged that day
-- KEYS[7] pending ZSET  lease id -> time (us) after which settling it changes nothing;
--                       settle's idempotency key (always kept: the ledgers need it too)
-- KEYS[8] use_min HASH  the minute's usage ledger (ledger.lua)
-- KEYS[9] use_day HASH  the day's usage ledger
--
-- ARGV: lease id, tokens to reserve, rpm limit, tpm limit, tpd limit, concurrency limit
--       (each limit -1 = unlimited), window (us), day (us), lease ttl (us),
--       longest concurrency retry (us), model
--
-- Reply: {status, reasons, retry_us, now_us, day, rpm_remaining, rpm_reset_us,
--         tpm_remaining, tpm_reset_us, tpd_remaining, tpd_reset_us, leases_held}
-- status 0 admitted, 1 rate limited, 2 daily tokens exhausted, 3 larger than a limit;
-- remaining -1 = unlimited; a reset is the time until that window is empty again
-- (OpenAI's "resets to its initial state"); retry_us the time until this request
-- would be admitted (concurrency alone: at most the longest concurrency retry).

local lease_id = ARGV[1]
local reserve = tonumber(ARGV[2])
local rpm_limit = tonumber(ARGV[3])
local tpm_limit = tonumber(ARGV[4])
local tpd_limit = tonumber(ARGV[5])
local conc_limit = tonumber(ARGV[6])
local window = tonumber(ARGV[7])
local day_len = tonumber(ARGV[8])
local lease_ttl = tonumber(ARGV[9])
local conc_retry = tonumber(ARGV[10])
local model = ARGV[11]

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local horizon = now - window
local day = math.floor(now / day_len)
local day_end = (day + 1) * day_len

local function int(x)
  return string.format('%d', x)
end

local function expire_after(key, us)
  redis.call('PEXPIRE', key, int(math.ceil(us / 1000) + 1000))
end

-- Drop token-log entries that left the window; returns the sum still in it.
local function purge_tokens()
  local sum = tonumber(redis.call('GET', KEYS[4]) or '0')
  while true do
    local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', int(horizon), 'LIMIT', 0, 500)
    if #ids == 0 then break end
    local amounts = redis.call('HMGET', KEYS[3], unpack(ids))
    for i = 1, #ids do
      sum = sum - (tonumber(amounts[i]) or 0)
    end
    redis.call('HDEL', KEYS[3], unpack(ids))
    redis.call('ZREM', KEYS[2], unpack(ids))
  end
  if redis.call('ZCARD', KEYS[2]) == 0 then sum = 0 end
  return sum
end

-- Time until the oldest entries holding `need` tokens leave the window.
local function tokens_wait(need)
  local freed = 0
  local start = 0
  while true do
    local chunk = redis.call('ZRANGE', KEYS[2], start, start + 199, 'WITHSCORES')
    if #chunk == 0 then return window end
    local ids = {}
    for i = 1, #chunk, 2 do ids[#ids + 1] = chunk[i] end
    local amounts = redis.call('HMGET', KEYS[3], unpack(ids))
    for i = 1, #ids do
      freed = freed + (tonumber(amounts[i]) or 0)
      if freed >= need then return tonumber(chunk[2 * i]) + window - now end
    end
    start = start + 200
  end
end

-- Time until the newest entry of a log leaves the window (0 when empty).
local function newest_wait(key)
  local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if #newest == 0 then return 0 end
  return math.max(0, tonumber(newest[2]) + window - now)
end

local tokens_limited = tpm_limit >= 0 or tpd_limit >= 0
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', int(now))
redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', int(now))
local held = redis.call('ZCARD', KEYS[5])

local rpm_used = 0
if rpm_limit >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', int(horizon))
  rpm_used = redis.call('ZCARD', KEYS[1])
end
local tpm_used = 0
if tpm_limit >= 0 then tpm_used = purge_tokens() end
local tpd_used = 0
if tpd_limit >= 0 then
  local record = redis.call('HMGET', KEYS[6], 'day', 'used')
  if tonumber(record[1]) == day then tpd_used = tonumber(record[2]) or 0 end
end

local function reply(status, reasons, retry)
  local rpm_remaining, tpm_remaining, tpd_remaining = -1, -1, -1
  local rpm_reset, tpm_reset, tpd_reset = 0, 0, 0
  if rpm_limit >= 0 then
    rpm_remaining = math.max(0, rpm_limit - rpm_used)
    rpm_reset = newest_wait(KEYS[1])
  end
  if tpm_limit >= 0 then
    tpm_remaining = math.max(0, tpm_limit - tpm_used)
    tpm_reset = newest_wait(KEYS[2])
  end
  if tpd_limit >= 0 then
    tpd_remaining = math.max(0, tpd_limit - tpd_used)
    tpd_reset = day_end - now
  end
  return {status, reasons, int(retry), int(now), int(day), int(rpm_remaining), int(rpm_reset),
          int(tpm_remaining), int(tpm_reset), int(tpd_remaining), int(tpd_reset), held}
end

if tpm_limit >= 0 and reserve > tpm_limit then return reply(3, 'tokens', 0) end
if tpd_limit >= 0 and reserve > tpd_limit then return reply(3, 'tokens_per_day', 0) end
if tpd_limit >= 0 and tpd_used + reserve > tpd_limit then
  return reply(2, 'tokens_per_day', day_end - now)
end

local reasons = {}
local retry = 0
if rpm_limit >= 0 and rpm_used >= rpm_limit then
  local nth = redis.call('ZRANGE', KEYS[1], rpm_used - rpm_limit, rpm_used - rpm_limit, 'WITHSCORES')
  retry = math.max(retry, tonumber(nth[2]) + window - now)
  reasons[#reasons + 1] = 'requests'
end
if tpm_limit >= 0 and tpm_used + reserve > tpm_limit then
  retry = math.max(retry, tokens_wait(tpm_used + reserve - tpm_limit))
  reasons[#reasons + 1] = 'tokens'
end
if conc_limit >= 0 and held >= conc_limit then
  local nth = redis.call('ZRANGE', KEYS[5], held - conc_limit, held - conc_limit, 'WITHSCORES')
  retry = math.max(retry, math.min(tonumber(nth[2]) - now, conc_retry))
  reasons[#reasons + 1] = 'concurrency'
end
if #reasons > 0 then
  return reply(1, table.concat(reasons, ','), math.max(retry, 1))
end

if rpm_limit >= 0 then
  redis.call('ZADD', KEYS[1], int(now), lease_id)
  expire_after(KEYS[1], window)
  rpm_used = rpm_used + 1
end
if tpm_limit >= 0 then
  redis.call('ZADD', KEYS[2], int(now), lease_id)
  redis.call('HSET', KEYS[3], lease_id, int(reserve))
  tpm_used = tpm_used + reserve
  redis.call('SET', KEYS[4], int(tpm_used))
  expire_after(KEYS[2], window)
  expire_after(KEYS[3], window)
  expire_after(KEYS[4], window)
end
if tpd_limit >= 0 then
  tpd_used = tpd_used + reserve
  redis.call('HSET', KEYS[6], 'day', int(day), 'used', int(tpd_used))
  expire_after(KEYS[6], day_end - now + day_len)
end
local settle_by = math.max(now + window, day_end)
redis.call('ZADD', KEYS[7], int(settle_by), lease_id)
expire_after(KEYS[7], settle_by - now)
local minute = math.floor(now / window)
ledger_add(KEYS[8], minute, (minute + 1) * window - now, {'r:' .. model, 1})
ledger_add(KEYS[9], day, day_end - now, {'r:' .. model, 1})
redis.call('ZADD', KEYS[5], int(now + lease_ttl), lease_id)
expire_after(KEYS[5], lease_ttl)
held = held + 1
return reply(0, '', 0)
