-- Set stock from the ledger: units - sold in Postgres - orders Redis accepted that Postgres
-- has not recorded yet. Atomic against checkout.lua, so no decrement is lost in between; an
-- order committed to Postgres but not yet cleared from `pending` is counted twice, which
-- undersells for a moment but never oversells. Orders the ledger has released but Redis has
-- not yet taken back are already out of `sold`: they are marked released here (as
-- release.lua would), so the retried release that follows gives nothing back twice.
-- KEYS: 1 stock, 2 pending, 3 used, 4 events, 5 expired
-- ARGV: 1 units, 2 sold in Postgres, 3.. queue ids of released orders Redis has not confirmed
for i = 3, #ARGV do
  redis.call('HDEL', KEYS[3], ARGV[i])
  redis.call('SADD', KEYS[5], ARGV[i])
end
local unsynced = 0
for _, qid in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local record = redis.call('HGET', KEYS[3], qid)
  if record then
    local qty = string.match(record, '^[^:]+:(%d+):')
    unsynced = unsynced + (tonumber(qty) or 0)
  end
end
local stock = math.max(tonumber(ARGV[1]) - tonumber(ARGV[2]) - unsynced, 0)
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
