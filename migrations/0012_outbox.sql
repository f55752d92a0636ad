-- Every event the shop hears, written in the same transaction as the change it reports, so
-- nothing is reported that did not happen and nothing that happened goes unreported. The relay
-- (every instance, FOR UPDATE SKIP LOCKED) fans each row out to the endpoints whose filter takes
-- it, then delivers.
CREATE TABLE outbox (
    -- Commit order within one order's events: a later event of an order always has a larger seq,
    -- since one order's changes are serialised by its row lock.
    seq        bigserial PRIMARY KEY,
    -- The event's id; its `webhook-id` is `msg_` and this id's simple form, the same on every
    -- attempt and to every endpoint.
    id         uuid        NOT NULL UNIQUE,
    type       text        NOT NULL CHECK (type IN ('order.created', 'order.paid', 'order.failed',
                   'order.expired', 'order.refund_due', 'sale.opened', 'sale.closed',
                   'sale.sold_out')),
    sale_id    text        NOT NULL,
    order_id   uuid,
    -- The payload's `data` object.
    data       jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- Set once the relay has made this event's deliveries (one per endpoint it matched then).
    fanned_out boolean     NOT NULL DEFAULT false
);

CREATE INDEX outbox_to_fan_out ON outbox (seq) WHERE NOT fanned_out;
