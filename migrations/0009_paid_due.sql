-- Orders Postgres has marked paid whose Redis step (paid.lua: the units no longer held, the
-- waitlist's `sold_out` after the last hold) has not been confirmed. Set in the same statement
-- as the status, cleared once paid.lua ran; the sweeper retries whatever is left, so a Redis
-- refusal during the webhook never leaves the waitlist waiting on a hold that is settled.
ALTER TABLE orders ADD COLUMN paid_due boolean NOT NULL DEFAULT false;
CREATE INDEX orders_paid_due ON orders (updated_at) WHERE paid_due;
