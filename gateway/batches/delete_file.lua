-- Delete a file's record and free what it counted in its owner's stored files (once).
--
-- KEYS as put_file.lua's; ARGV[1] file id.
-- Reply: 1 when the file was counted (and is freed now), else 0.

local id = ARGV[1]
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], id)
redis.call('ZREM', KEYS[3], id)
redis.call('ZREM', KEYS[4], id)
local counted = redis.call('HGET', KEYS[6], id)
if not counted then return 0 end
redis.call('HDEL', KEYS[6], id)
local files = tonumber(redis.call('HGET', KEYS[5], 'files') or '0')
local bytes = tonumber(redis.call('HGET', KEYS[5], 'bytes') or '0')
redis.call('HSET', KEYS[5], 'files', math.max(0, files - 1),
           'bytes', math.max(0, bytes - tonumber(counted)))
return 1
