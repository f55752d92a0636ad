-- Apply an admin's change to a sale, already written to the ledger under the sale's row lock:
-- the changed cfg fields set or cleared (admit.lua and enqueue.lua read cfg on every call, so
-- every instance follows from its next tick), and for a units increase the stock grows by as
-- much, lifting sold-out as a release does. Units come as the sale's new total, not as an
-- increase: the stock grows by the difference to the total Redis last applied (cfg `units`), so
-- the same change again (a retry after a lost reply or a failed ledger commit) adds nothing.
-- While the sale is `unsettled` no units are added: the settle that ends that state counts them
-- from the ledger's units.
-- Variants are restocked the same way, each by the difference to its units last applied.
-- ARGV: 1 JSON {set = {field = value as a string}, clear = [field], units = the new total,
--   vunits = {variant = its new units} (empty without variants)}
-- Returns the stock now, or -1 if Redis has lost the sale (the rebuild reads the ledger).
if redis.call('EXISTS', K.cfg) == 0 then return -1 end
local c = cjson.decode(ARGV[1])
local applied = tonumber(redis.call('HGET', K.cfg, 'units') or tostring(c.units))
local added = c.units - applied
local cap_was = places_cap()
for field, value in pairs(c.set) do redis.call('HSET', K.cfg, field, value) end
for _, field in ipairs(c.clear) do redis.call('HDEL', K.cfg, field) end
-- A places cap counts every waiting place, those taken before it was set too; with none, the
-- counts are not kept (a later cap counts afresh).
local cap = places_cap()
if cap > 0 and cap_was <= 0 then recount_places()
elseif cap <= 0 then redis.call('DEL', K.places) end
redis.call('HSET', K.cfg, 'units', c.units)
local unsettled = redis.call('EXISTS', K.unsettled) == 1
for variant, units in pairs(c.vunits) do
  local grew = units - tonumber(redis.call('HGET', K.vunits, variant) or tostring(units))
  redis.call('HSET', K.vunits, variant, units)
  if grew > 0 and not unsettled then redis.call('HINCRBY', K.vstock, variant, grew) end
end
if added <= 0 or unsettled then
  return tonumber(redis.call('GET', K.stock) or '0')
end
local left = redis.call('INCRBY', K.stock, added)
local _, now_us = redis_now()
redis.call('SPUBLISH', K.events, cjson.encode({type = 'restocked', remaining = left,
  variants = variants_left(), at = int_text(now_us)}))
return left
