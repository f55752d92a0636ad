-- At the door: a cap on the places one client may hold in a sale's line, and the proof-of-work
-- a join must bring. 0 turns either off, which is what every existing sale keeps.
ALTER TABLE sales
    ADD COLUMN max_places_per_client integer NOT NULL DEFAULT 0
        CHECK (max_places_per_client >= 0),
    ADD COLUMN pow_difficulty integer NOT NULL DEFAULT 0
        CHECK (pow_difficulty BETWEEN 0 AND 32);
