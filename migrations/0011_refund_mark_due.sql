-- Orders the webhook made `refund_due` whose Redis marker (the queue id in `wr:{S}:refunds`,
-- which the shopper's status reads) is not confirmed yet. Set in the same statement as the
-- status, cleared once Redis has the marker; the sweeper retries whatever is left, so a Redis
-- refusal during the webhook never leaves the shopper reading `expired` for money we owe.
ALTER TABLE orders ADD COLUMN refund_mark_due boolean NOT NULL DEFAULT false;
CREATE INDEX orders_refund_mark_due ON orders (updated_at) WHERE refund_mark_due;
