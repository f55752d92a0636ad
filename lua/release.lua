-- Give back the units of orders the ledger has released (failed payment, lapsed hold),
-- lifting sold-out. The quantities are the ledger's, so a release does not depend on Redis
-- still holding the order's `used` record. Idempotent per ticket: its units come back only
-- the first time it joins `expired`, so a retried release (the sweeper retries any Redis did
-- not confirm), or one for a lapse a rebuild or reconcile already counted, changes nothing.
-- The ticket stays spent: status says `expired`, a retried checkout answers ticket_expired.
-- KEYS: 1 cfg, 2 stock, 3 events, 4 used, 5 expired
-- ARGV: pairs of (queue id, quantity)
-- Returns the stock now, or -1 if Redis has lost the sale (retried once it is rebuilt).
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local back = 0
for i = 1, #ARGV, 2 do
  redis.call('HDEL', KEYS[4], ARGV[i])
  if redis.call('SADD', KEYS[5], ARGV[i]) == 1 then
    back = back + tonumber(ARGV[i + 1])
  end
end
if back == 0 then return tonumber(redis.call('GET', KEYS[2]) or '0') end
local left = redis.call('INCRBY', KEYS[2], back)
redis.call('PUBLISH', KEYS[3], cjson.encode({type = 'restocked', remaining = left}))
return left
