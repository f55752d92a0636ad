-- Variants (issue 21): sizes with stock of their own. A sale declares them in `variants`
-- ([{id, name, units}], written with its other settings); `sale_variants` mirrors each one's
-- units and counts what it sold, so the same kind of CHECK as `sold_within_units` refuses an
-- oversold size. Both are kept by triggers, whichever code path writes a sale or an order
-- (a checkout, the ledger sync after an outage, a payment, a lapsed hold). A sale without
-- variants has no rows here and its orders a null variant: the triggers' WHEN skips them.
ALTER TABLE sales ADD COLUMN variants jsonb NOT NULL DEFAULT '[]';
ALTER TABLE orders ADD COLUMN variant_id text;

CREATE TABLE sale_variants (
    sale_id    text    NOT NULL REFERENCES sales (id),
    variant_id text    NOT NULL,
    units      integer NOT NULL CHECK (units >= 0),
    sold       integer NOT NULL DEFAULT 0,
    PRIMARY KEY (sale_id, variant_id),
    CONSTRAINT variant_sold_within_units CHECK (sold >= 0 AND sold <= units)
);

-- The declaration's units, as created or restocked (a PATCH only ever grows them).
CREATE FUNCTION sale_variants_declared() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sale_variants (sale_id, variant_id, units)
    SELECT NEW.id, v->>'id', (v->>'units')::integer FROM jsonb_array_elements(NEW.variants) v
    ON CONFLICT (sale_id, variant_id) DO UPDATE SET units = EXCLUDED.units;
    RETURN NULL;
END
$$;

CREATE TRIGGER sales_variants AFTER INSERT OR UPDATE OF variants ON sales
    FOR EACH ROW WHEN (jsonb_array_length(NEW.variants) > 0)
    EXECUTE FUNCTION sale_variants_declared();

-- An order counts against its variant while it is live (pending payment or paid), as
-- `sales.sold` counts it: created, it takes its units; failed or lapsed, it gives them back.
CREATE FUNCTION order_counts(status text) RETURNS integer LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN status IN ('pending_payment', 'paid') THEN 1 ELSE 0 END
$$;

CREATE FUNCTION sale_variants_sold() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    delta integer := order_counts(NEW.status);
BEGIN
    IF TG_OP = 'UPDATE' THEN
        delta := delta - order_counts(OLD.status);
    END IF;
    IF delta <> 0 THEN
        UPDATE sale_variants SET sold = sold + delta * NEW.quantity
        WHERE sale_id = NEW.sale_id AND variant_id = NEW.variant_id;
        IF NOT FOUND THEN
            RAISE check_violation USING MESSAGE = 'order names no variant of its sale';
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER orders_variant_sold AFTER INSERT OR UPDATE OF status ON orders
    FOR EACH ROW WHEN (NEW.variant_id IS NOT NULL)
    EXECUTE FUNCTION sale_variants_sold();

-- Outbound order events name the variant (absent for a sale without variants).
CREATE OR REPLACE FUNCTION outbox_order_data(o orders) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object('variant', o.variant_id)) || jsonb_build_object(
        'order_id', o.id,
        'sale_id', o.sale_id,
        'quantity', o.quantity,
        'unit_price_cents', o.amount_cents / o.quantity,
        'total_cents', o.amount_cents,
        'status', o.status,
        'hold_expires_at', o.hold_expires_at,
        'created_at', o.created_at)
$$;
