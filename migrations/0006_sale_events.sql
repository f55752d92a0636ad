-- The audit trail: what happened to a sale, by whom, in order. Append-only: the app only
-- inserts, and the trigger refuses UPDATE, DELETE and TRUNCATE so a bug cannot rewrite it.
CREATE TABLE sale_events (
    id      bigserial   PRIMARY KEY,
    sale_id text        NOT NULL REFERENCES sales (id),
    at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- created, changed, opened, closed, sold_out, restocked, rebuilt, reconciled, payment,
    -- admitted (one row per tick that let anyone in, with the count)
    kind    text        NOT NULL,
    -- who did it: api, schedule, redis (a flip made with redis-cli), system
    source  text        NOT NULL,
    detail  jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX sale_events_by_sale ON sale_events (sale_id, id);

CREATE FUNCTION sale_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'sale_events is append-only';
END $$;
CREATE TRIGGER sale_events_no_update BEFORE UPDATE OR DELETE ON sale_events
    FOR EACH ROW EXECUTE FUNCTION sale_events_append_only();
CREATE TRIGGER sale_events_no_truncate BEFORE TRUNCATE ON sale_events
    FOR EACH STATEMENT EXECUTE FUNCTION sale_events_append_only();
