-- Set stock from the ledger, read under the sale's row lock: units - sold in Postgres - the
-- units of orders Redis accepted that Postgres has not recorded. Atomic against checkout.lua,
-- so no decrement is lost in between.
-- A rebuilt sale stops being `unsettled` once a reconcile runs `settle_after_ms` or more
-- after the rebuild (by then every order in flight at the loss has landed or failed).
-- KEYS: 1 stock, 2 pending, 3 used, 4 events, 5 expired, 6 released, 7 unsettled
-- ARGV: 1 JSON {units, sold, settle_after_ms,
--   released = [[queue id, order id], ...]  orders the ledger released that Redis has not
--              confirmed taking back: already out of `sold`, so they are marked released
--              here (as release.lua would) and the retry that follows gives nothing twice;
--   recorded = {queue id = order id}        tickets in `pending` whose order Postgres has
--              already committed (in `sold`; not to be counted again)}
local a = cjson.decode(ARGV[1])
for _, r in ipairs(a.released) do
  local record = redis.call('HGET', KEYS[3], r[1])
  if not record or string.sub(record, 1, #r[2] + 1) == r[2] .. ':' then
    redis.call('HDEL', KEYS[3], r[1])
    redis.call('SADD', KEYS[5], r[1])
  end
  redis.call('SADD', KEYS[6], r[1])
end
local unsynced = 0
for _, qid in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local record = redis.call('HGET', KEYS[3], qid)
  if record then
    local oid, qty = string.match(record, '^([^:]+):(%d+):')
    if a.recorded[qid] ~= oid then unsynced = unsynced + (tonumber(qty) or 0) end
  end
end
local stock = math.max(a.units - a.sold - unsynced, 0)
local since = redis.call('GET', KEYS[7])
if since then
  local t = redis.call('TIME')
  local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if now_ms - tonumber(since) >= a.settle_after_ms then redis.call('DEL', KEYS[7]) end
end
local before = tonumber(redis.call('GET', KEYS[1]) or '-1')
redis.call('SET', KEYS[1], stock)
if before ~= stock then
  if stock == 0 then
    redis.call('PUBLISH', KEYS[4], cjson.encode({type = 'sold_out'}))
  else
    redis.call('PUBLISH', KEYS[4], cjson.encode({type = 'restocked', remaining = stock}))
  end
end
return stock
