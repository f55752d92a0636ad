-- Give back the units of orders the ledger has released (failed payment, lapsed hold),
-- lifting sold-out. The quantities are the ledger's, so a release does not depend on Redis
-- still holding the order's `used` record. Idempotent per ticket (a ticket makes at most one
-- order): its units come back only the first time it joins `released`, so a retried release
-- (the sweeper retries any Redis did not confirm), or one a rebuild or reconcile already
-- counted, changes nothing. The ticket stays spent: status says `expired`, a retried checkout
-- answers ticket_expired; a `used` record of another order (Redis had forgotten this one and
-- let the ticket buy again) is left for the ledger sync to settle. While a rebuilt sale is
-- `unsettled`, units are not added here: the released order may be one whose decrement was
-- lost with Redis, and the reconcile that settles the sale counts it from `sold` either way.
-- KEYS: 1 cfg, 2 stock, 3 events, 4 used, 5 expired, 6 released, 7 unsettled
-- ARGV: triples of (queue id, quantity, order id)
-- Returns the stock now, or -1 if Redis has lost the sale (retried once it is rebuilt).
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local back = 0
for i = 1, #ARGV, 3 do
  local qid, qty, oid = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  local record = redis.call('HGET', KEYS[4], qid)
  if not record or string.sub(record, 1, #oid + 1) == oid .. ':' then
    redis.call('HDEL', KEYS[4], qid)
    redis.call('SADD', KEYS[5], qid)
  end
  if redis.call('SADD', KEYS[6], qid) == 1 then back = back + qty end
end
if redis.call('EXISTS', KEYS[7]) == 1 then back = 0 end
if back == 0 then return tonumber(redis.call('GET', KEYS[2]) or '0') end
local left = redis.call('INCRBY', KEYS[2], back)
redis.call('PUBLISH', KEYS[3], cjson.encode({type = 'restocked', remaining = left}))
return left
