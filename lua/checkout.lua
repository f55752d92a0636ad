-- Take units for one admission ticket, atomically: the single place stock goes down.
-- ARGV: 1 queue id (the ticket's jti), 2 quantity, 3 new order id, 4 the ticket's expiry (ms),
--   5 the variant ('' in a sale without variants)
-- Returns {outcome, detail}:
--   ok <record>          units taken; the order record (JSON {id, qty, at, v?}) kept in `used`
--   last <record>        as ok, and these were the last units (stock is 0 now)
--   dup <record>         this ticket bought before: the same order again (a retry is safe)
--   expired | sold_out <units held> | insufficient <left> | too_many <max per order>
--   unknown_variant      the sale has no such variant (or has variants and none was named)
--   variant_sold_out <JSON of every variant's units left>
--   unsettled            Redis may be behind the ledger (a restart, a rebuild): no sale until
--                        it is reconciled (the caller answers 503)
--   unknown              Redis does not have the sale (lost: the caller rebuilds it)
local qid = ARGV[1]
local qty = tonumber(ARGV[2])
local max = redis.call('HGET', K.cfg, 'max_per_order')
if not max then return {'unknown', ''} end
local prev = redis.call('HGET', K.used, qid)
if prev then return {'dup', prev} end
if redis.call('EXISTS', K.unsettled) == 1 then return {'unsettled', ''} end
if qty > tonumber(max) then return {'too_many', max} end

local now_ms, now_us = redis_now()
local expires = redis.call('ZSCORE', K.admitted, qid)
if not expires then
  if redis.call('SISMEMBER', K.expired, qid) == 1 then return {'expired', ''} end
  -- A ticket leaves `admitted` only into `used` or `expired`: Redis lost this admission (a
  -- restart or failover that lost its last writes). The signed ticket is proof of it.
  expires = ARGV[4]
end
if tonumber(expires) <= now_ms then
  redis.call('ZREM', K.admitted, qid)
  -- A place a re-presented queue token brought back after such a loss is not needed any more.
  if redis.call('ZREM', K.queue, qid) == 1 then free_place(qid, places_cap()) end
  redis.call('SADD', K.expired, qid)
  return {'expired', ''}
end

local stock = tonumber(redis.call('GET', K.stock) or '0')
if stock <= 0 then return {'sold_out', redis.call('GET', K.held) or '0'} end
-- A sale with variants sells from the named one; `stock` stays their sum (admission counts it).
local variant = ARGV[5]
if variant ~= '' or redis.call('EXISTS', K.vstock) == 1 then
  local vleft = tonumber(redis.call('HGET', K.vstock, variant))
  if not vleft then return {'unknown_variant', ''} end
  if vleft <= 0 then return {'variant_sold_out', cjson.encode(variants_left())} end
  stock = math.min(stock, vleft)
else
  variant = nil
end
if stock < qty then return {'insufficient', tostring(stock)} end

local left = redis.call('DECRBY', K.stock, qty)
if variant and redis.call('HINCRBY', K.vstock, variant, -qty) == 0 and left > 0 then
  -- This size is gone (the sale is not): every stream greys it out.
  redis.call('SPUBLISH', K.events, cjson.encode({type = 'variant_sold_out', variant = variant,
    variants = variants_left(), at = int_text(now_us)}))
end
local record = cjson.encode({id = ARGV[3], qty = qty, at = now_ms, v = variant})
redis.call('HSET', K.used, qid, record)
redis.call('ZREM', K.admitted, qid)
-- A place a re-presented queue token brought back after such a loss is not needed any more.
if redis.call('ZREM', K.queue, qid) == 1 then free_place(qid, places_cap()) end
-- `pending` holds orders Redis accepted that Postgres has not confirmed yet; the ledger sync
-- drains it, so an order survives an app crash or a Postgres outage between the two writes.
redis.call('SADD', K.pending, qid)
-- Units held for payment: they may still come back (a failed payment, a lapsed hold).
local held = redis.call('INCRBY', K.held, qty)
if left == 0 then
  -- The last unit: who waits is now on the waitlist until the last hold settles.
  redis.call('SPUBLISH', K.events, cjson.encode({type = 'all_held', held = held,
    variants = variants_left(), at = int_text(now_us)}))
end
return {left == 0 and 'last' or 'ok', record}
