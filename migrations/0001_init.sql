-- The order ledger. Postgres is the authority on what was sold; Redis holds the live state.
-- Invariant: sales.sold = sum(quantity) of the sale's orders in pending_payment or paid,
-- and the CHECK below makes overselling impossible here whatever Redis says.
CREATE TABLE sales (
    id              text PRIMARY KEY,
    name            text        NOT NULL,
    units           integer     NOT NULL CHECK (units >= 0),
    sold            integer     NOT NULL DEFAULT 0,
    price_cents     bigint      NOT NULL CHECK (price_cents >= 0),
    rate_per_sec    integer     NOT NULL CHECK (rate_per_sec > 0),
    ticket_ttl_secs integer     NOT NULL CHECK (ticket_ttl_secs > 0),
    max_per_order   integer     NOT NULL CHECK (max_per_order > 0),
    max_active      integer     NOT NULL DEFAULT 0 CHECK (max_active >= 0),
    hold_secs       integer     NOT NULL CHECK (hold_secs > 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sold_within_units CHECK (sold >= 0 AND sold <= units)
);

CREATE TABLE orders (
    id              uuid PRIMARY KEY,
    sale_id         text        NOT NULL REFERENCES sales (id),
    -- The admission ticket's jti: one order per ticket, so a retried checkout cannot buy twice.
    ticket_id       text        NOT NULL,
    quantity        integer     NOT NULL CHECK (quantity > 0),
    amount_cents    bigint      NOT NULL CHECK (amount_cents >= 0),
    status          text        NOT NULL CHECK (status IN
                        ('pending_payment', 'paid', 'failed', 'expired', 'refund_due')),
    hold_expires_at timestamptz NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (sale_id, ticket_id)
);

CREATE INDEX orders_pending_holds ON orders (hold_expires_at) WHERE status = 'pending_payment';

-- Payment provider events, kept so a redelivered event is a no-op.
CREATE TABLE payment_events (
    event_id    text PRIMARY KEY,
    order_id    uuid        NOT NULL,
    outcome     text        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
