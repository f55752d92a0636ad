-- When a sale finished: every unit sold and paid for, no hold that could lapse, no release due,
-- so no unit can come back. The background loops then stop looking at it (only live sales
-- cost anything); reads still answer. Cleared when an admin opens the sale again.
ALTER TABLE sales ADD COLUMN finished_at timestamptz;
CREATE INDEX sales_live ON sales (id) WHERE finished_at IS NULL;
