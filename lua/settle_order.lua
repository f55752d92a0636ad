-- Make Redis agree with the ledger's verdict on one order Redis accepted.
-- ARGV: 1 queue id, 2 verdict, 3 the ledger's order record (verdict 'kept')
--   kept     the ledger holds an earlier order for this ticket (Redis had forgotten it and
--            let the ticket buy again): keep the ledger's record and give back the units
--            Redis took for any other one. Running it again changes nothing.
--   refused  the ledger refused the order (Redis's stock was ahead of it): the ticket is
--            spent and nothing was sold; the caller then settles the sale's stock.
-- Returns the stock now.
local qid = ARGV[1]
local stock = tonumber(redis.call('GET', K.stock) or '0')
if ARGV[2] == 'refused' then
  redis.call('HDEL', K.used, qid)
  redis.call('SADD', K.expired, qid)
  redis.call('SREM', K.pending, qid)
  return stock
end
local record = redis.call('HGET', K.used, qid)
redis.call('HSET', K.used, qid, ARGV[3])
if not record then return stock end
local had = cjson.decode(record)
if had.id == cjson.decode(ARGV[3]).id then return stock end
local back = had.qty
local left = redis.call('INCRBY', K.stock, back)
if had.v then redis.call('HINCRBY', K.vstock, had.v, back) end
local _, now_us = redis_now()
redis.call('SPUBLISH', K.events, cjson.encode({type = 'restocked', remaining = left,
  variants = variants_left(), at = int_text(now_us)}))
return left
