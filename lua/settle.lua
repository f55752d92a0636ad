-- Make Redis agree with the ledger, read under the sale's row lock. Atomic against
-- checkout.lua, so no decrement is lost in between.
--  * Orders: every live order the ledger holds is this ticket's `used` record (Redis may have
--    lost it: a restart that lost its AOF tail, a failover, a rebuild that read the ledger
--    before it committed); a ticket whose order lapsed keeps no record and stays spent.
--  * Stock: units - sold in Postgres - the units of orders Redis accepted that Postgres has
--    not recorded.
--  * A sale marked `unsettled` (rebuilt, or seen behind the ledger) takes the ledger's open
--    switch and stops being unsettled once a settle runs `settle_after_ms` or more after the
--    mark (by then every order in flight at the loss has landed or failed); the hubs then
--    forget their buyer lists (`reconciled`).
-- ARGV: 1 JSON {units, sold, settle_after_ms, open,
--   released = [[queue id, order id], ...]  orders the ledger released that Redis has not
--              confirmed taking back: already out of `sold`, so they are marked released
--              here (as release.lua would) and the retry that follows gives nothing twice;
--   bought = {queue id = order record}, lapsed = [queue ids]  (every order of the sale),
--   paid = [queue ids of paid orders], failed = [queue ids whose payment failed],
--   refunds = [queue ids due a refund],
--   vunits = {variant = units} (empty without variants): each variant's stock is counted as
--   the sale's is, from its units, the live orders and the unsynced ones}
-- Returns the stock now.
local a = cjson.decode(ARGV[1])
local function spend(qid)
  redis.call('HDEL', K.used, qid)
  redis.call('SADD', K.expired, qid)
end
for _, r in ipairs(a.released) do
  local record = redis.call('HGET', K.used, r[1])
  if not record or cjson.decode(record).id == r[2] then spend(r[1]) end
  redis.call('SADD', K.released, r[1])
end
for qid, record in pairs(a.bought) do
  local had = redis.call('HGET', K.used, qid)
  if not had or cjson.decode(had).id ~= cjson.decode(record).id then
    redis.call('HSET', K.used, qid, record)
    redis.call('ZREM', K.admitted, qid)
  end
end
for _, qid in ipairs(a.lapsed) do
  spend(qid)
  redis.call('SADD', K.released, qid)
end
for _, qid in ipairs(a.paid) do redis.call('SADD', K.paid, qid) end
for _, qid in ipairs(a.failed) do redis.call('SADD', K.failed, qid) end
for _, qid in ipairs(a.refunds) do redis.call('SADD', K.refunds, qid) end
local held = recount_held()
local unsynced = 0
local taken = {}
for _, record in pairs(a.bought) do taken[#taken + 1] = record end
for _, qid in ipairs(redis.call('SMEMBERS', K.pending)) do
  local record = redis.call('HGET', K.used, qid)
  if record and not a.bought[qid] then
    unsynced = unsynced + cjson.decode(record).qty
    taken[#taken + 1] = record
  end
end
count_variants(a.vunits, taken)
local stock = math.max(a.units - a.sold - unsynced, 0)
local now_ms, now_us = redis_now()
local at = int_text(now_us)
local since = redis.call('GET', K.unsettled)
local settled = false
if since then
  if a.open then redis.call('SET', K.open, '1') else redis.call('DEL', K.open) end
  if now_ms - tonumber(since) >= a.settle_after_ms then
    redis.call('DEL', K.unsettled)
    settled = true
  end
end
local before = tonumber(redis.call('GET', K.stock) or '-1')
redis.call('SET', K.stock, stock)
if settled then
  redis.call('SPUBLISH', K.events, cjson.encode({type = 'reconciled', remaining = stock,
    held = held, variants = variants_left(), at = at}))
elseif before ~= stock then
  local kind = 'restocked'
  if stock == 0 then kind = held > 0 and 'all_held' or 'sold_out' end
  redis.call('SPUBLISH', K.events, cjson.encode({type = kind, remaining = stock, held = held,
    variants = variants_left(), at = at}))
end
return stock
