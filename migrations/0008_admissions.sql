-- Who was let in, when: the data behind the fairness report. One row per admission, written
-- by the instance whose admission tick let the shopper in (one multi-row INSERT per tick).
-- Times are Redis TIME in microseconds: `joined_us` is the place's join score (what FIFO
-- orders by), `admitted_us` the tick's clock, so waits and FIFO order are measured on the
-- one clock admission itself runs on. Append-only like sale_events: the report is evidence.
CREATE TABLE admissions (
    sale_id     text   NOT NULL REFERENCES sales (id),
    queue_id    text   NOT NULL,
    joined_us   bigint NOT NULL,
    admitted_us bigint NOT NULL,
    -- A place Redis lost and a token restored can be admitted twice: the first one counts.
    PRIMARY KEY (sale_id, queue_id)
);
-- The report walks a sale's admissions in admission order (FIFO inversions, the rate).
CREATE INDEX admissions_by_tick ON admissions (sale_id, admitted_us);

CREATE FUNCTION admissions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'admissions is append-only';
END $$;
CREATE TRIGGER admissions_no_update BEFORE UPDATE OR DELETE ON admissions
    FOR EACH ROW EXECUTE FUNCTION admissions_append_only();
CREATE TRIGGER admissions_no_truncate BEFORE TRUNCATE ON admissions
    FOR EACH STATEMENT EXECUTE FUNCTION admissions_append_only();
