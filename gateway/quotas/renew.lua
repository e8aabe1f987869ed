-- Extend a live concurrency lease by its TTL; an expired or freed lease stays gone.
--
-- KEYS[1] leases ZSET (as in admit.lua); ARGV: lease id, lease ttl (us)
-- Reply: 1 renewed, 0 the lease no longer exists.

local expiry = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not expiry then return 0 end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
if now >= tonumber(expiry) then return 0 end
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], 'XX', string.format('%d', now + ttl), ARGV[1])
redis.call('PEXPIRE', KEYS[1], string.format('%d', math.ceil(ttl / 1000) + 1000))
return 1
