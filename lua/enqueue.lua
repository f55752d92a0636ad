-- Join the line, or re-present a queue token to keep the original place: one call joins a batch
-- of shoppers (`store::batch` gathers the joins of one event-loop turn for one sale), each
-- weighed exactly as if it came alone, in ARGV order.
-- ARGV, 6 per join: queue id, score from the shopper's token ('' for a new shopper), 'restore'
--   or '', the client's tag (`<client>`, or `<network>.<client>` for an IPv6 client counted in
--   its wider network too), the proof-of-work bits the caller verified (0 for none), and the
--   network's share: its clients together hold at most share × the places cap
-- Returns one reply per join, in order: {status, score, seq, position, open, queue id}; status
-- is one of unknown | sold_out | waiting | waitlisted (waiting with no stock left, units held
-- for payment) | admitted | expired | purchased | lost | pow_required | too_many_places; open
-- is 1 while admitting. The queue id returned is the one to sign: a new
-- place carries its client's tag ('<id>.<tag>'), so a capped sale knows whose count to free
-- without any per-shopper record, and the id is the same whether or not the sale caps places
-- (a cap set or lifted mid-sale never gives a browser a second place). A new join that finds
-- its browser's live place answers it with seq 0 (and score '0' when admitted).
-- Scores are Redis TIME in microseconds, made strictly increasing with seq.last_us so two joins
-- in the same microsecond never tie (ties would fall back to member order, breaking FIFO).
if redis.call('EXISTS', K.cfg) == 0 then
  local out = {}
  for i = 1, #ARGV, 6 do out[#out + 1] = {'unknown', '0', 0, 0, 0} end
  return out
end
local stock = tonumber(redis.call('GET', K.stock) or '0')
local open = redis.call('GET', K.open) == '1' and 1 or 0
-- No stock, but units held for payment may come back: the line is a waitlist, still joinable.
local sold_out = stock <= 0 and tonumber(redis.call('GET', K.held) or '0') <= 0
local waiting_as = stock <= 0 and 'waitlisted' or 'waiting'

local door = redis.call('HMGET', K.cfg, 'pow_difficulty', 'max_places_per_client')
local cap = tonumber(door[2]) or 0
-- Redis TIME once: each new place still gets a strictly larger score than the last one.
local _, now_us = redis_now()
local last_us = tonumber(redis.call('HGET', K.seq, 'last_us') or '0')

local function join(qid, token_score, mode, tag, bits, share)
  if token_score ~= '' then
    if redis.call('HEXISTS', K.used, qid) == 1 then return {'purchased', token_score, 0, 0, open} end
    if redis.call('ZSCORE', K.admitted, qid) then return {'admitted', token_score, 0, 0, open} end
    if redis.call('SISMEMBER', K.expired, qid) == 1 then return {'expired', token_score, 0, 0, open} end
    -- A place in the queue is never moved. A token in no set at all means Redis lost the sale:
    -- the place comes back at its old score once the caller has asked the ledger whether this
    -- shopper bought meanwhile (mode 'restore'), sold out or not.
    local waiting = redis.call('ZSCORE', K.queue, qid)
    if not waiting and mode ~= 'restore' then return {'lost', token_score, 0, 0, open} end
    if sold_out then return {'sold_out', token_score, 0, 0, open} end
    if not waiting then
      redis.call('ZADD', K.queue, token_score, qid)
      -- A restored place counts again: the count was lost with the line.
      if cap > 0 then
        local own, net = place_owners(qid)
        count_place(own, 1)
        count_place(net, 1)
      end
    end
    return {waiting_as, token_score, 0, redis.call('ZRANK', K.queue, qid) + 1, open}
  end

  local suffix = '.' .. tag
  -- One place per browser: the queue id derives from the browser's session (`door::session`), so a
  -- second join from it finds the live place (waiting or admitted) the first one made, whatever
  -- the door would say now. A finished place (bought, expired) lets it join again at the back
  -- under the next id of its sequence: id_g = sha1(id_0 .. ':' .. g) cut to the 18 hex characters of
  -- id_0 (door::session's QUEUE_ID_CHARS), nothing stored per shopper.
  local base = qid
  qid = base .. suffix
  local g = 0
  while redis.call('HEXISTS', K.used, qid) == 1 or redis.call('SISMEMBER', K.expired, qid) == 1 do
    g = g + 1
    if g > 32 then return {'too_many_places', '0', 0, g, open} end
    qid = redis.sha1hex(base .. ':' .. g):sub(1, 18) .. suffix
  end
  local waiting = redis.call('ZSCORE', K.queue, qid)
  if waiting then
    return {waiting_as, waiting, 0, redis.call('ZRANK', K.queue, qid) + 1, open, qid}
  end
  if redis.call('ZSCORE', K.admitted, qid) then return {'admitted', '0', 0, 0, open, qid} end

  if sold_out then return {'sold_out', '0', 0, 0, open} end
  if (tonumber(door[1]) or 0) > tonumber(bits) then return {'pow_required', '0', 0, 0, open} end
  -- A place counts against its client while it waits; admit.lua frees it when it pops it.
  if cap > 0 then
    local held = tonumber(redis.call('HGET', K.places, tag) or '0')
    if held >= cap then return {'too_many_places', '0', 0, held, open} end
    local net = tag:match('^([^.]+)%.')
    if net then
      local together = tonumber(redis.call('HGET', K.places, net) or '0')
      if together >= cap * math.max(tonumber(share) or 1, 1) then
        return {'too_many_places', '0', 0, together, open}
      end
    end
    count_place(tag, 1)
    count_place(net, 1)
  end
  local us = now_us
  if us <= last_us then us = last_us + 1 end
  last_us = us
  local seq = redis.call('HINCRBY', K.seq, 'n', 1)
  redis.call('HSET', K.seq, 'last_us', string.format('%d', us))
  local score = string.format('%d', us)
  redis.call('ZADD', K.queue, 'NX', score, qid)
  return {waiting_as, score, seq, redis.call('ZRANK', K.queue, qid) + 1, open, qid}
end

local out = {}
for i = 1, #ARGV, 6 do
  out[#out + 1] = join(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5])
end
return out
