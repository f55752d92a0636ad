-- Open or close a sale whose `opens_at` / `closes_at` (cfg fields, unix ms) Redis's clock has
-- reached: the same switch and the same `opened` / `closed` event as the admin's open and
-- close. Each due time is cleared here, atomically, so exactly one call of all instances' sees
-- it fire and writes it down (the ledger, the audit trail). A switch already as the schedule
-- wants it stays so; the time is cleared all the same. Times due together apply in order.
-- Returns {now_ms, next pending time in ms or -1, {{field, due_ms, flipped 0|1}, ...}}.
local now = redis_now()
local at = redis.call('HMGET', K.cfg, 'opens_at', 'closes_at')
local times = {}
if at[1] then times[#times + 1] = {'opens_at', tonumber(at[1]), true} end
if at[2] then times[#times + 1] = {'closes_at', tonumber(at[2]), false} end
table.sort(times, function(a, b) return a[2] < b[2] end)
local fired, next_due = {}, -1
for _, s in ipairs(times) do
  local field, due, open = s[1], s[2], s[3]
  if due <= now then
    redis.call('HDEL', K.cfg, field)
    local flipped = 0
    if (redis.call('GET', K.open) == '1') ~= open then
      if open then redis.call('SET', K.open, '1') else redis.call('DEL', K.open) end
      redis.call('SPUBLISH', K.events, cjson.encode({type = open and 'opened' or 'closed'}))
      flipped = 1
    end
    -- A draw's entries are those who joined before the opening time (lua/draw.lua).
    if open and redis.call('HGET', K.cfg, 'prequeue') == '1' then
      redis.call('HSETNX', K.cfg, 'draw_cut', int_text(due * 1000))
    end
    -- A closing time ends the sale: once nothing is held, the sweeper finishes it.
    if not open then redis.call('HSET', K.cfg, 'ended', now) end
    fired[#fired + 1] = {field, due, flipped}
  elseif next_due < 0 then
    next_due = due
  end
end
return {now, next_due, fired}
