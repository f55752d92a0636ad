-- Set stock from the ledger, read under the sale's row lock: units - sold in Postgres - the
-- units of orders Redis accepted that Postgres has not recorded. Atomic against checkout.lua,
-- so no decrement is lost in between. A rebuilt sale stops being `unsettled` once a settle
-- runs `settle_after_ms` or more after the rebuild (by then every order in flight at the
-- loss has landed or failed).
-- ARGV: 1 JSON {units, sold, settle_after_ms,
--   released = [[queue id, order id], ...]  orders the ledger released that Redis has not
--              confirmed taking back: already out of `sold`, so they are marked released
--              here (as release.lua would) and the retry that follows gives nothing twice;
--   recorded = {queue id = order id}        tickets in `pending` whose order Postgres has
--              already committed (in `sold`; not to be counted again)}
-- Returns the stock now.
local a = cjson.decode(ARGV[1])
for _, r in ipairs(a.released) do
  local record = redis.call('HGET', K.used, r[1])
  if not record or cjson.decode(record).id == r[2] then
    redis.call('HDEL', K.used, r[1])
    redis.call('SADD', K.expired, r[1])
  end
  redis.call('SADD', K.released, r[1])
end
local unsynced = 0
for _, qid in ipairs(redis.call('SMEMBERS', K.pending)) do
  local record = redis.call('HGET', K.used, qid)
  if record then
    local o = cjson.decode(record)
    if a.recorded[qid] ~= o.id then unsynced = unsynced + o.qty end
  end
end
local stock = math.max(a.units - a.sold - unsynced, 0)
local since = redis.call('GET', K.unsettled)
if since then
  local t = redis.call('TIME')
  local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if now_ms - tonumber(since) >= a.settle_after_ms then redis.call('DEL', K.unsettled) end
end
local before = tonumber(redis.call('GET', K.stock) or '-1')
redis.call('SET', K.stock, stock)
if before ~= stock then
  local t = redis.call('TIME')
  local at = string.format('%d', tonumber(t[1]) * 1000000 + tonumber(t[2]))
  if stock == 0 then
    redis.call('SPUBLISH', K.events, cjson.encode({type = 'sold_out', at = at}))
  else
    redis.call('SPUBLISH', K.events, cjson.encode({type = 'restocked', remaining = stock, at = at}))
  end
end
return stock
