-- The draw (issue 22, docs/draw.md): a sale whose pre-queue is a draw, its seed and the
-- drawn order. `prequeue` and `draw_beacon` are settings (columns named after the fields).
ALTER TABLE sales
    ADD COLUMN prequeue text NOT NULL DEFAULT 'fifo' CHECK (prequeue IN ('fifo', 'draw')),
    ADD COLUMN draw_beacon text;

-- One per sale that was ever set to draw. The seed is secret until `drawn_at`: only the
-- public endpoint reveals it, and only then. `cut_us` is the Redis time (µs) entries were
-- frozen at: places joined at or before it are the entries.
CREATE TABLE sale_draws (
    sale_id      text        PRIMARY KEY REFERENCES sales (id),
    seed         bytea       NOT NULL CHECK (length(seed) = 32),
    commitment   text        NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT now(),
    cut_us       bigint,
    entries_root text,
    entries      integer,
    beacon       text,
    drawn_at     timestamptz
);

-- The drawn order: what Redis's line was re-scored to, and what a rebuild restores a place
-- to (a token's join time is mapped to its rank). Written once, with `drawn_at`.
CREATE TABLE draw_entries (
    sale_id   text    NOT NULL REFERENCES sale_draws (sale_id),
    rank      integer NOT NULL,
    public_id text    NOT NULL,
    queue_id  text    NOT NULL,
    PRIMARY KEY (sale_id, rank)
);
CREATE UNIQUE INDEX draw_entries_by_queue_id ON draw_entries (sale_id, queue_id);
