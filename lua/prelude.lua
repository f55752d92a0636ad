-- The prelude of every script, loaded after the keys table `K` (src/infra/store/scripts.rs):
-- what several scripts need, written once. Unused functions cost a script nothing.

-- Redis TIME, the one clock every instance agrees on: (milliseconds, microseconds).
local function redis_now()
  local t = redis.call('TIME')
  local s, us = tonumber(t[1]), tonumber(t[2])
  return s * 1000 + math.floor(us / 1000), s * 1000000 + us
end

-- A time as Redis keys and event messages carry it: a decimal string (a Lua number of µs
-- would print as a float).
local function int_text(n)
  return string.format('%d', n)
end

-- Units held for payment: every order Redis knows (`used`) that is not paid. Sets `held`.
local function recount_held()
  local held = 0
  local used = redis.call('HGETALL', K.used)
  for i = 1, #used, 2 do
    if redis.call('SISMEMBER', K.paid, used[i]) == 0 then
      held = held + cjson.decode(used[i + 1]).qty
    end
  end
  redis.call('SET', K.held, held)
  return held
end


-- The places cap in force: 0 when the sale does not cap places per client. The `places` hash
-- (client tag → live places) is kept only while it is above 0.
local function places_cap()
  return tonumber(redis.call('HGET', K.cfg, 'max_places_per_client') or '0') or 0
end

-- Whose counts a place is held against: its client's tag (everything after the queue id's first
-- dot) and, when the tag names one (`<network>.<client>`), its wider IPv6 network's.
local function place_owners(qid)
  local own = qid:match('^[^.]*%.(.+)$')
  if not own then return nil, nil end
  return own, own:match('^([^.]+)%.')
end

local function count_place(who, by)
  if who and redis.call('HINCRBY', K.places, who, by) <= 0 then redis.call('HDEL', K.places, who) end
end

-- A place leaves the line (popped by admission, or bought by a ticket that a restored place
-- shadowed): its owners' counts go down.
local function free_place(qid, cap)
  if cap <= 0 then return end
  local own, net = place_owners(qid)
  count_place(own, -1)
  count_place(net, -1)
end

-- Counts every waiting place by its owners, from the line itself: run when a cap is set, so
-- places taken while the sale had none count as well. O(line), once per change.
local function recount_places()
  redis.call('DEL', K.places)
  local counts = {}
  local members = redis.call('ZRANGE', K.queue, 0, -1)
  for i = 1, #members do
    local own, net = place_owners(members[i])
    if own then counts[own] = (counts[own] or 0) + 1 end
    if net then counts[net] = (counts[net] or 0) + 1 end
  end
  local args = {}
  for who, n in pairs(counts) do
    args[#args + 1] = who
    args[#args + 1] = n
    if #args >= 2000 then
      redis.call('HSET', K.places, unpack(args))
      args = {}
    end
  end
  if #args > 0 then redis.call('HSET', K.places, unpack(args)) end
end

-- Variants (a sale with sizes): `vstock` holds each one's units left, `vunits` the units it
-- was given as last applied. A sale without variants has neither, and none of this runs.

-- Each variant's units left (variant → n) for an event message; nil without variants, so
-- the messages of a sale without them are as before.
local function variants_left()
  local flat = redis.call('HGETALL', K.vstock)
  if #flat == 0 then return nil end
  local left = {}
  for i = 1, #flat, 2 do left[flat[i]] = tonumber(flat[i + 1]) end
  return left
end

-- Sets each declared variant's units (`vunits`: variant → units) and units left: those less
-- the units of `records`, order records as checkout.lua writes them (`v` names the variant).
local function count_variants(vunits, records)
  local taken = {}
  for _, rec in ipairs(records) do
    local r = cjson.decode(rec)
    if r.v then taken[r.v] = (taken[r.v] or 0) + r.qty end
  end
  for v, units in pairs(vunits) do
    redis.call('HSET', K.vunits, v, units)
    redis.call('HSET', K.vstock, v, math.max(units - (taken[v] or 0), 0))
  end
end
