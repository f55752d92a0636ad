-- The shop's payment page (issue 20, the hand-off): where the queue page sends a buyer with
-- the hand-off token. Null: the sale hands nobody on; the page says the shop completes it.
ALTER TABLE sales ADD COLUMN checkout_url text;
