-- Give units back to stock (a failed payment or an expired hold), lifting sold-out.
-- KEYS: 1 stock, 2 events
-- ARGV: 1 quantity
local left = redis.call('INCRBY', KEYS[1], tonumber(ARGV[1]))
redis.call('PUBLISH', KEYS[2], cjson.encode({type = 'restocked', remaining = left}))
return left
