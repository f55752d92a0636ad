-- The draw of a `prequeue: "draw"` sale (cfg `prequeue` = 1; docs/draw.md). admit.lua admits
-- nobody from such a sale until cfg `drawn` is 1, so no entry leaves the line before the
-- drawn order is in place.
-- ARGV[1] = 'check': the ticker's look, each tick. Freezes the entries once the sale is open:
--   the cut (cfg `draw_cut`, Redis µs) is set here on Redis's clock unless schedule.lua set it
--   to `opens_at` as it opened the sale; places scored at or before the cut are the entries,
--   and `seq.last_us` moves to the cut so every later join scores above it.
--   Returns {state, cut}: state is fifo | drawn | waiting (not open yet) | due (the flow
--   ranks the entries, lua/draw.lua 'apply' puts them in place) | unknown (no such sale).
-- ARGV[1] = 'apply', ARGV[2] = the cut, ARGV[3] = n, ARGV[4..] = the entries' queue ids in rank
--   order, as the ledger recorded and published them: each entry still in line is re-scored to
--   cut - n - 1 + rank (ahead of every later join, in rank order); a place scored at or before
--   the cut that is not an entry (Redis lost it before the cut and a token brought it back
--   since) goes to the cut, just behind them. Then admission may start (cfg `drawn`).
--   Idempotent: a second apply (another instance, a retry) changes nothing.
--   Returns {entries re-scored, places moved behind}, or {-1, 0} for a sale Redis lost.
if redis.call('EXISTS', K.cfg) == 0 then
  if ARGV[1] == 'check' then return {'unknown', '0'} end
  return {-1, 0}
end
local d = redis.call('HMGET', K.cfg, 'prequeue', 'draw_cut', 'drawn')

if ARGV[1] == 'check' then
  if d[1] ~= '1' then return {'fifo', '0'} end
  if d[3] == '1' then return {'drawn', d[2] or '0'} end
  if d[2] then return {'due', d[2]} end
  if redis.call('GET', K.open) ~= '1' then return {'waiting', '0'} end
  local _, now_us = redis_now()
  -- Join scores run strictly upwards and may run a few µs ahead of the clock (seq.last_us).
  local last = tonumber(redis.call('HGET', K.seq, 'last_us') or '0')
  local cut = int_text(math.max(now_us, last))
  redis.call('HSET', K.cfg, 'draw_cut', cut)
  redis.call('HSET', K.seq, 'last_us', cut)
  return {'due', cut}
end

if d[3] == '1' then return {0, 0} end
local cut, n = tonumber(ARGV[2]), tonumber(ARGV[3])
local before = redis.call('ZCOUNT', K.queue, '-inf', ARGV[2])
local placed = 0
for i = 4, #ARGV do
  local qid = ARGV[i]
  local s = redis.call('ZSCORE', K.queue, qid)
  if s and tonumber(s) <= cut then
    redis.call('ZADD', K.queue, 'XX', int_text(cut - n - 1 + (i - 3)), qid)
    placed = placed + 1
  end
end
local behind = 0
if before > placed then
  local listed = {}
  for i = 4, #ARGV do listed[ARGV[i]] = true end
  local early = redis.call('ZRANGEBYSCORE', K.queue, '-inf', ARGV[2])
  for _, qid in ipairs(early) do
    if not listed[qid] then
      redis.call('ZADD', K.queue, 'XX', ARGV[2], qid)
      behind = behind + 1
    end
  end
end
redis.call('HSET', K.cfg, 'drawn', 1, 'draw_cut', ARGV[2])
return {placed, behind}
