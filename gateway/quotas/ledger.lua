-- The usage ledger of one scope, prepended to admit.lua, settle.lua and charge.lua: what
-- each model took in the current minute and the current day, kept whatever the limits.
--
-- A ledger is a HASH: 'bucket' -> the window's index (Redis time / window length),
-- 'r:<model>' -> requests admitted, 't:<model>' -> tokens charged (live and batch),
-- 'b:<model>' -> the part of those tokens batch jobs spent. A write into a newer window
-- starts the hash again; the hash expires a second after its window ends.

-- Add {field, amount, field, amount, ...} to the ledger `key` of window `bucket`, which
-- ends `ends_in` microseconds from now.
local function ledger_add(key, bucket, ends_in, counts)
  local index = string.format('%d', bucket)
  if redis.call('HGET', key, 'bucket') ~= index then
    redis.call('DEL', key)
    redis.call('HSET', key, 'bucket', index)
  end
  for i = 1, #counts, 2 do
    redis.call('HINCRBY', key, counts[i], counts[i + 1])
  end
  redis.call('PEXPIRE', key, string.format('%d', math.ceil(ends_in / 1000) + 1000))
end

