-- The outbox is written by triggers, so every change that writes an order or flips a sale
-- reports itself in its own transaction, whichever code path made it (a checkout, the ledger
-- sync after an outage, a payment, a hold that lapsed, the admin, a schedule, the sweeper).

-- An order event's `data`: what the shop needs to act on it without asking back.
CREATE FUNCTION outbox_order_data(o orders) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'order_id', o.id,
        'sale_id', o.sale_id,
        'quantity', o.quantity,
        'unit_price_cents', o.amount_cents / o.quantity,
        'total_cents', o.amount_cents,
        'status', o.status,
        'hold_expires_at', o.hold_expires_at,
        'created_at', o.created_at)
$$;

CREATE FUNCTION outbox_order_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status THEN
        INSERT INTO outbox (id, type, sale_id, order_id, data)
        VALUES (gen_random_uuid(),
                CASE NEW.status WHEN 'pending_payment' THEN 'order.created'
                                ELSE 'order.' || NEW.status END,
                NEW.sale_id, NEW.id, outbox_order_data(NEW));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER orders_outbox AFTER INSERT OR UPDATE OF status ON orders
    FOR EACH ROW EXECUTE FUNCTION outbox_order_event();

-- Sale events: the switch as the ledger keeps it, and the end of a sale that sold every unit
-- (finished with nothing held: every unit paid for).
CREATE FUNCTION outbox_sale_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    kind text;
BEGIN
    IF NEW.open IS DISTINCT FROM OLD.open THEN
        kind := CASE WHEN NEW.open THEN 'sale.opened' ELSE 'sale.closed' END;
        INSERT INTO outbox (id, type, sale_id, data)
        VALUES (gen_random_uuid(), kind, NEW.id, jsonb_build_object(
            'sale_id', NEW.id, 'units', NEW.units, 'sold', NEW.sold, 'open', NEW.open));
    END IF;
    IF OLD.finished_at IS NULL AND NEW.finished_at IS NOT NULL AND NEW.sold >= NEW.units THEN
        INSERT INTO outbox (id, type, sale_id, data)
        VALUES (gen_random_uuid(), 'sale.sold_out', NEW.id, jsonb_build_object(
            'sale_id', NEW.id, 'units', NEW.units, 'sold', NEW.sold,
            'sold_out_at', NEW.finished_at));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER sales_outbox AFTER UPDATE OF open, finished_at ON sales
    FOR EACH ROW EXECUTE FUNCTION outbox_sale_event();
