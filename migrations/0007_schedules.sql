-- Schedules: when the sale opens and closes by itself (Redis's clock decides, lua/schedule.lua).
-- Each is cleared once its time has come, so a set value is always a pending one.
ALTER TABLE sales ADD COLUMN opens_at timestamptz, ADD COLUMN closes_at timestamptz;
