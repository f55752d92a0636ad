-- Rebuild a sale Redis has lost (a flush, a new Redis) from the ledger, unless it is there
-- already (another instance was first). One atomic step: no join or checkout sees half a
-- sale, and buyers and lapsed shoppers are known again before anyone can rejoin. The sale is
-- marked `unsettled` (since when, by Redis's clock): an order Redis accepted before the loss
-- may still commit after the ledger was read, so stock is reconciled once such orders have
-- landed, and releases meanwhile leave the count to that reconcile (see release.lua).
-- KEYS: 1 cfg, 2 stock, 3 used, 4 expired, 5 released, 6 unsettled
-- ARGV: 1 JSON {cfg = {field = value}, stock = n, used = {queue id = record}, expired = [ids]}
--   expired: tickets whose orders lapsed; their units are out of `sold` already (released)
-- Returns 1 if rebuilt, 0 if the sale was already there.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local s = cjson.decode(ARGV[1])
for qid, record in pairs(s.used) do redis.call('HSET', KEYS[3], qid, record) end
for _, qid in ipairs(s.expired) do
  redis.call('SADD', KEYS[4], qid)
  redis.call('SADD', KEYS[5], qid)
end
for field, value in pairs(s.cfg) do redis.call('HSET', KEYS[1], field, value) end
redis.call('SET', KEYS[2], s.stock)
local t = redis.call('TIME')
redis.call('SET', KEYS[6], string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)))
return 1
