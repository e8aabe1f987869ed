-- Change a batch's status, only from the statuses allowed, with the fields that go with it.
--
-- KEYS[1] the batch hash, KEYS[2] the active set (batches not finished yet)
-- ARGV[1] batch id, ARGV[2] new status, ARGV[3] allowed current statuses (space-separated),
-- ARGV[4] '1' when the new status is final (the batch leaves the active set),
-- ARGV[5..] field, value pairs written with the change
--
-- Reply: the status before the call (the change happened only if it was an allowed one);
-- nil when there is no such batch.

local current = redis.call('HGET', KEYS[1], 'status')
if not current then return nil end
if not string.find(' ' .. ARGV[3] .. ' ', ' ' .. current .. ' ', 1, true) then
  return current
end
redis.call('HSET', KEYS[1], 'status', ARGV[2])
for i = 5, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
if ARGV[4] == '1' then redis.call('ZREM', KEYS[2], ARGV[1]) end
return current
