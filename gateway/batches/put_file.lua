-- File a file's record and count it in its owner's stored files, within the owner's limits.
--
-- KEYS[1] the file's record, KEYS[2] the owner's index, KEYS[3] the owner's index of the
-- purpose, KEYS[4] the expiring set, KEYS[5] the owner's usage (HASH files, bytes),
-- KEYS[6] the owner's file sizes (HASH file id -> bytes counted)
-- ARGV[1] file id, ARGV[2] the record's JSON, ARGV[3] time filed, ARGV[4] expires_at
-- ('' for never), ARGV[5] the file's bytes, ARGV[6] most files, ARGV[7] most bytes
-- (-1: no limit)
--
-- Reply: {status, files, bytes}: status 0 filed (files and bytes after it), 1 refused
-- for the count, 2 refused for the bytes (files and bytes as they stand). Filing an id
-- that is already counted (a batch's output written again) replaces its size.

local id, size = ARGV[1], tonumber(ARGV[5])
local max_files, max_bytes = tonumber(ARGV[6]), tonumber(ARGV[7])
local files = tonumber(redis.call('HGET', KEYS[5], 'files') or '0')
local bytes = tonumber(redis.call('HGET', KEYS[5], 'bytes') or '0')
local counted = redis.call('HGET', KEYS[6], id)
local new_files, new_bytes = files + 1, bytes + size
if counted then new_files, new_bytes = files, bytes + size - tonumber(counted) end
if max_files >= 0 and new_files > max_files then return {1, files, bytes} end
if max_bytes >= 0 and new_bytes > max_bytes then return {2, files, bytes} end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], 'NX', ARGV[3], id)
redis.call('ZADD', KEYS[3], 'NX', ARGV[3], id)
if ARGV[4] ~= '' then redis.call('ZADD', KEYS[4], ARGV[4], id) end
redis.call('HSET', KEYS[6], id, size)
redis.call('HSET', KEYS[5], 'files', new_files, 'bytes', new_bytes)
return {0, new_files, new_bytes}
