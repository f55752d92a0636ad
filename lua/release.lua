-- Give back the units of orders that no longer hold them, lifting sold-out. Idempotent: the
-- units given back are read from each ticket's `used` record, which this removes, so a
-- retried release (the sweeper retries any Redis did not confirm) changes nothing.
-- KEYS: 1 stock, 2 events, 3 used, 4 expired
-- ARGV: pairs of (queue id, record to keep)
--   keep = ''      the order lapsed (failed payment, expired hold): its ticket stays spent,
--                  so status says `expired` and a retried checkout answers ticket_expired;
--   keep = record  the ledger holds this earlier order for the ticket: the units Redis took
--                  for any other record go back and the ledger's record replaces it.
-- Returns the stock now.
local back = 0
for i = 1, #ARGV, 2 do
  local qid, keep = ARGV[i], ARGV[i + 1]
  local record = redis.call('HGET', KEYS[3], qid)
  if record and record ~= keep then
    back = back + (tonumber(string.match(record, '^[^:]+:(%d+):')) or 0)
  end
  if keep == '' then
    redis.call('HDEL', KEYS[3], qid)
    redis.call('SADD', KEYS[4], qid)
  else
    redis.call('HSET', KEYS[3], qid, keep)
  end
end
if back == 0 then return tonumber(redis.call('GET', KEYS[1]) or '0') end
local left = redis.call('INCRBY', KEYS[1], back)
redis.call('PUBLISH', KEYS[2], cjson.encode({type = 'restocked', remaining = left}))
return left
