-- One admission tick for one sale. Safe to run from any number of instances at once: it is
-- atomic and reads the clock from Redis TIME, so together they admit exactly rate_per_sec.
-- Returns {open, stock, active, queue_len, admits_total, expired_now, rate, held, now_us,
-- variants, admitted id, its join score (µs), ...}; variants is JSON of each variant's units
-- left ('' in a sale without variants); now_us (Redis TIME in µs, as a string) orders this
-- tick's numbers against the stock messages other scripts publish; the join scores are what
-- the fairness report measures waits and FIFO order by.
-- A sale Redis does not have (being created, or lost): nothing to say about it.
if redis.call('EXISTS', K.cfg) == 0 then return {} end
local now_ms, now_us = redis_now()

-- Expired tickets leave the admitted set (their capacity returns) and are remembered so an
-- expired shopper cannot re-present a queue token to jump back to the front.
local gone = redis.call('ZRANGEBYSCORE', K.admitted, '-inf', now_ms)
if #gone > 0 then
  redis.call('ZREMRANGEBYSCORE', K.admitted, '-inf', now_ms)
  for i = 1, #gone, 1000 do
    redis.call('SADD', K.expired, unpack(gone, i, math.min(i + 999, #gone)))
  end
end

local open = redis.call('GET', K.open) == '1'
-- A draw sale admits nobody until its entries are ranked and in place (lua/draw.lua).
local draw = redis.call('HMGET', K.cfg, 'prequeue', 'drawn')
local undrawn = draw[1] == '1' and draw[2] ~= '1'
local stock = tonumber(redis.call('GET', K.stock) or '0')
local active = redis.call('ZCARD', K.admitted)
local cfg = redis.call('HMGET', K.cfg, 'rate_per_sec', 'ticket_ttl_secs', 'max_active',
  'max_per_order')
local rate = tonumber(cfg[1]) or 1
local ids, scores = {}, {}

local b = redis.call('HMGET', K.bucket, 'last_ms', 'allowance', 'admitting')
if not open or stock <= 0 or undrawn then
  -- Closed, sold out or not drawn yet: admit nobody and build no burst.
  redis.call('HSET', K.bucket, 'last_ms', now_ms, 'allowance', 0, 'admitting', 0)
elseif b[3] ~= '1' then
  -- The first tick to see the sale admitting starts the bucket empty, however long ago the
  -- last tick was: opening never releases a burst.
  redis.call('HSET', K.bucket, 'last_ms', now_ms, 'allowance', 0, 'admitting', 1)
else
  local ttl_ms = (tonumber(cfg[2]) or 60) * 1000
  local max_active = tonumber(cfg[3]) or 0
  local last = tonumber(b[1]) or now_ms
  local allowance = tonumber(b[2]) or 0
  -- At most one second of burst, so a stalled ticker cannot release a flood at once.
  allowance = math.min(allowance + math.max(now_ms - last, 0) * rate / 1000, math.max(rate, 1))
  -- Admission counts units: each admitted shopper may still take up to max_per_order, so
  -- no more are let in than could buy what is left (with 1 per order: one per unit).
  local per = math.max(tonumber(cfg[4]) or 1, 1)
  local room = math.min(math.floor(allowance), math.ceil(stock / per) - active)
  if max_active > 0 then room = math.min(room, max_active - active) end
  if room > 0 then
    local popped = redis.call('ZPOPMIN', K.queue, room)
    local cap = places_cap()
    local expires = now_ms + ttl_ms
    for i = 1, #popped, 2 do
      redis.call('ZADD', K.admitted, expires, popped[i])
      ids[#ids + 1] = popped[i]
      scores[#scores + 1] = popped[i + 1]
      free_place(popped[i], cap)
    end
    if #ids > 0 then
      allowance = allowance - #ids
      active = active + #ids
      local total = redis.call('INCRBY', K.admits, #ids)
      redis.call('SPUBLISH', K.events, cjson.encode({type = 'admitted', ids = ids,
        expires_at = expires, admitted_total = total}))
    end
  end
  redis.call('HSET', K.bucket, 'last_ms', now_ms, 'allowance', tostring(allowance))
end

local result = {open and 1 or 0, stock, active, redis.call('ZCARD', K.queue),
  tonumber(redis.call('GET', K.admits) or '0'), #gone, rate,
  tonumber(redis.call('GET', K.held) or '0'),
  int_text(now_us)}
local variants = variants_left()
result[#result + 1] = variants and cjson.encode(variants) or ''
for i = 1, #ids do
  result[#result + 1] = ids[i]
  result[#result + 1] = scores[i]
end
return result
