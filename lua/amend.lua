-- The ledger already holds an earlier order for this ticket (Redis had forgotten it and let
-- the ticket buy again): give back whatever Redis took for any other record and keep the
-- ledger's. Idempotent: once the ledger's record is in place, running again changes nothing.
-- KEYS: 1 stock, 2 events, 3 used
-- ARGV: 1 queue id, 2 the ledger's record
-- Returns the stock now.
local record = redis.call('HGET', KEYS[3], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
local back = 0
if record and record ~= ARGV[2] then
  back = tonumber(string.match(record, '^[^:]+:(%d+):')) or 0
end
if back == 0 then return tonumber(redis.call('GET', KEYS[1]) or '0') end
local left = redis.call('INCRBY', KEYS[1], back)
redis.call('PUBLISH', KEYS[2], cjson.encode({type = 'restocked', remaining = left}))
return left
