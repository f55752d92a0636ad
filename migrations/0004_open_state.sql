-- Whether the sale is open, kept beside Redis's `wr:{id}:open` switch: a sale Redis lost comes
-- back as it was. The admin API writes it first; flips made with redis-cli are copied here by
-- the sweeper.
ALTER TABLE sales ADD COLUMN open boolean NOT NULL DEFAULT false;
