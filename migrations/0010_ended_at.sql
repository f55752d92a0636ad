-- When a `closes_at` schedule closed the sale: its sale is over even with units unsold, and
-- once no order is held it is finished like a sold-out one (the loops leave it, its Redis keys
-- expire). Cleared when an admin opens the sale again.
ALTER TABLE sales ADD COLUMN ended_at timestamptz;
