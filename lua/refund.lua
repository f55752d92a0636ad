-- The ledger made this shopper's order `refund_due`: their status says so from now on, and
-- their open streams hear `order` (they re-read where they stand). A set member, so a retry
-- (the sweeper's, a rebuild's) changes nothing and tells no one again.
-- ARGV: 1 queue id
if redis.call('SADD', K.refunds, ARGV[1]) == 1 then
  redis.call('SPUBLISH', K.events, cjson.encode({type = 'order', ids = {ARGV[1]}}))
end
return 0
