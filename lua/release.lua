-- Give units back to stock (a failed payment or an expired hold), lifting sold-out.
-- KEYS: 1 stock, 2 events, 3 used, 4 expired
-- ARGV: 1 quantity, 2.. the queue ids whose orders lapsed
-- Their tickets stay spent: the `used` record goes and the id joins `expired`, so status
-- says `expired` (not `purchased`) and a retried checkout answers ticket_expired.
local left = redis.call('INCRBY', KEYS[1], tonumber(ARGV[1]))
for i = 2, #ARGV do
  redis.call('HDEL', KEYS[3], ARGV[i])
  redis.call('SADD', KEYS[4], ARGV[i])
end
redis.call('PUBLISH', KEYS[2], cjson.encode({type = 'restocked', remaining = left}))
return left
