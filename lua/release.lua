-- Give back the units of orders the ledger has released (failed payment, lapsed hold),
-- lifting sold-out. The quantities are the ledger's, so a release does not depend on Redis
-- still holding the order's `used` record. Idempotent per ticket (a ticket makes at most one
-- order): its units come back only the first time it joins `released`, so a retried release,
-- or one a rebuild or settle already counted, changes nothing. The ticket stays spent. A
-- `used` record of another order (Redis had forgotten this one and let the ticket buy again)
-- is left for the ledger sync to settle. While a rebuilt sale is `unsettled`, no units are
-- added: the settle that ends that state counts them from the ledger's `sold`.
-- ARGV: fives of (queue id, quantity, order id, 1 if its payment failed: its shopper then
--   reads `failed`, else 0, its variant or '')
-- Returns the stock now, or -1 if Redis has lost the sale (retried once it is rebuilt).
if redis.call('EXISTS', K.cfg) == 0 then return -1 end
local back = 0
local vback = {}
local ids = {}
for i = 1, #ARGV, 5 do
  local qid, qty, oid, failed = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], ARGV[i + 3] == '1'
  local variant = ARGV[i + 4]
  local record = redis.call('HGET', K.used, qid)
  if not record or cjson.decode(record).id == oid then
    redis.call('HDEL', K.used, qid)
    redis.call('SADD', K.expired, qid)
  end
  if redis.call('SADD', K.released, qid) == 1 then
    back = back + qty
    if variant ~= '' then vback[variant] = (vback[variant] or 0) + qty end
  end
  if failed then redis.call('SADD', K.failed, qid) end
  ids[#ids + 1] = qid
end
-- Each buyer's open streams re-read where they stand (payment failed, hold lapsed).
if #ids > 0 then
  redis.call('SPUBLISH', K.events, cjson.encode({type = 'order', ids = ids}))
end
-- Released units are no longer held (the count never goes below zero: a rebuilt sale's
-- holds are counted by settle.lua).
local held = tonumber(redis.call('GET', K.held) or '0')
if back > 0 then
  held = math.max(held - back, 0)
  redis.call('SET', K.held, held)
end
if redis.call('EXISTS', K.unsettled) == 1 then back = 0 end
if back == 0 then return tonumber(redis.call('GET', K.stock) or '0') end
local left = redis.call('INCRBY', K.stock, back)
for variant, n in pairs(vback) do redis.call('HINCRBY', K.vstock, variant, n) end
local _, now_us = redis_now()
redis.call('SPUBLISH', K.events, cjson.encode({type = 'restocked', remaining = left,
  held = held, variants = variants_left(), at = int_text(now_us)}))
return left
