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

