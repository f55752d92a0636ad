-- A hold was paid: its units are sold for good and no longer held. Idempotent per ticket
-- (`paid` remembers it), so a redelivered webhook changes nothing. When the last hold of a
-- sale with no stock settles, nothing can come back: the waitlist hears `sold_out`. The buyer
-- hears `order` (their streams re-read where they stand).
-- ARGV: 1 queue id, 2 quantity
-- Returns {units still held, 1 if this payment sold the sale out for good else 0}.
if redis.call('SADD', K.paid, ARGV[1]) == 0 then
  return {tonumber(redis.call('GET', K.held) or '0'), 0}
end
-- The buyer's open streams re-read their standing: the page shows the order paid.
redis.call('SPUBLISH', K.events, cjson.encode({type = 'order', ids = {ARGV[1]}}))
local held = math.max(tonumber(redis.call('GET', K.held) or '0') - tonumber(ARGV[2]), 0)
redis.call('SET', K.held, held)
if held == 0 and redis.call('EXISTS', K.cfg) == 1
    and tonumber(redis.call('GET', K.stock) or '0') <= 0 then
  local _, now_us = redis_now()
  redis.call('SPUBLISH', K.events, cjson.encode({type = 'sold_out', held = 0,
    at = int_text(now_us)}))
  return {0, 1}
end
return {held, 0}
