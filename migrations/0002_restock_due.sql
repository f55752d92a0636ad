-- Units Postgres has released (a failed payment, a lapsed hold) that Redis has not confirmed
-- taking back yet. Set in the same statement as the release, cleared once release.lua ran;
-- the sweeper retries whatever is left, so a Redis hiccup never loses a unit for good.
ALTER TABLE orders ADD COLUMN restock_due boolean NOT NULL DEFAULT false;
CREATE INDEX orders_restock_due ON orders (updated_at) WHERE restock_due;
