-- The relay claims due deliveries in (next_attempt_at, seq) order. Indexed on next_attempt_at
-- alone, a replay (thousands due at the same instant) made every claim sort them all by seq:
-- the drain ran at about 200 deliveries/s.
DROP INDEX webhook_deliveries_due;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at, seq)
    WHERE state = 'pending';
