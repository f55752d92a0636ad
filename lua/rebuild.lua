-- Rebuild a sale Redis has lost from the ledger, unless it is there already (another
-- instance was first). One atomic step: no join or checkout sees half a sale, and buyers and
-- lapsed shoppers are known again before anyone can rejoin. The sale is marked `unsettled`
-- (since when, by Redis's clock) until a settle (settle.lua) counts the orders that were in
-- flight at the loss.
-- Checkouts answer 503 until then; the hubs drop their buyer lists (`unsettled`).
-- ARGV: 1 JSON {cfg = {field = value}, stock = n, used = {queue id = order record},
--   lapsed = [queue ids whose orders lapsed; their units are out of `sold` already],
--   open = the ledger's open switch, paid = [queue ids of paid orders],
--   failed = [queue ids whose payment failed], refunds = [queue ids due a refund],
--   admitted = [{queue id, ticket expiry ms} of admissions that never ordered],
--   vunits = {variant = units} (empty without variants): each one's stock is its units less
--   what `used` holds of it}
-- Returns 1 if rebuilt, 0 if the sale was already there.
if redis.call('EXISTS', K.cfg) == 1 then return 0 end
local s = cjson.decode(ARGV[1])
local records = {}
for qid, record in pairs(s.used) do
  redis.call('HSET', K.used, qid, record)
  records[#records + 1] = record
end
count_variants(s.vunits, records)
for _, qid in ipairs(s.lapsed) do
  redis.call('SADD', K.expired, qid)
  redis.call('SADD', K.released, qid)
end
for _, qid in ipairs(s.paid) do redis.call('SADD', K.paid, qid) end
for _, qid in ipairs(s.failed) do redis.call('SADD', K.failed, qid) end
for _, qid in ipairs(s.refunds) do redis.call('SADD', K.refunds, qid) end
-- Admitted and never ordered: a lapsed admission stays lapsed (never back in the line, ahead
-- of everyone still waiting), a live one keeps its ticket and counts against the stock.
local now_ms = redis_now()
for _, a in ipairs(s.admitted) do
  if a[2] <= now_ms then
    redis.call('SADD', K.expired, a[1])
  else
    redis.call('ZADD', K.admitted, a[2], a[1])
  end
end
recount_held()
for field, value in pairs(s.cfg) do redis.call('HSET', K.cfg, field, value) end
redis.call('SET', K.stock, s.stock)
if s.open then redis.call('SET', K.open, '1') end
redis.call('SET', K.unsettled, int_text(now_ms))
redis.call('SPUBLISH', K.events, cjson.encode({type = 'unsettled'}))
return 1
