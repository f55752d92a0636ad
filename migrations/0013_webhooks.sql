-- Outbound webhooks: the shop's endpoints, and one delivery per (endpoint, outbox event). The
-- relay (every instance, FOR UPDATE SKIP LOCKED) fans each outbox row out to the enabled
-- endpoints whose filters take it, then sends the due deliveries outside any transaction.
CREATE TABLE webhook_endpoints (
    id              uuid        PRIMARY KEY,
    url             text        NOT NULL,
    description     text        NOT NULL DEFAULT '',
    -- Event types this endpoint hears; empty = all.
    events          text[]      NOT NULL DEFAULT '{}',
    -- Sales this endpoint hears; empty = all.
    sales           text[]      NOT NULL DEFAULT '{}',
    -- `whsec_` + base64 of 32 random bytes: the Standard Webhooks signing key.
    secret          text        NOT NULL,
    -- After a rotation the old secret signs too, until `previous_until`.
    previous_secret text,
    previous_until  timestamptz,
    -- Off after a 410 (or by an admin): no new deliveries, and its pending ones wait.
    enabled         boolean     NOT NULL DEFAULT true,
    disabled_reason text,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_deliveries (
    id              bigserial   PRIMARY KEY,
    endpoint_id     uuid        NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    -- The outbox row: its seq orders one order's events, its id is the `webhook-id`.
    seq             bigint      NOT NULL REFERENCES outbox (seq) ON DELETE CASCADE,
    event_id        uuid        NOT NULL,
    event_type      text        NOT NULL,
    order_id        uuid,
    -- pending: to send (or in flight, claimed until next_attempt_at); delivered: a 2xx came
    -- back; failed: given up after the last retry.
    state           text        NOT NULL DEFAULT 'pending'
                                CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    -- When the next attempt may start. A claim pushes it past the attempt's timeout, so an
    -- instance that dies mid-attempt leaves the delivery to another; 'infinity' while the
    -- endpoint is disabled.
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_status     integer,
    last_error      text,
    last_attempt_at timestamptz,
    delivered_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (endpoint_id, seq)
);

-- The claim: due pending deliveries, soonest first.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
-- The per-order rule: an earlier pending delivery of the same order to the same endpoint.
CREATE INDEX webhook_deliveries_order_pending ON webhook_deliveries (endpoint_id, order_id, seq)
    WHERE state = 'pending' AND order_id IS NOT NULL;
-- The admin's view of an endpoint: its latest attempt, and what it gave up on.
CREATE INDEX webhook_deliveries_last_attempt ON webhook_deliveries (endpoint_id, last_attempt_at);
CREATE INDEX webhook_deliveries_failed ON webhook_deliveries (endpoint_id) WHERE state = 'failed';
-- The per-order rule again: an earlier event of the same order not yet fanned out.
CREATE INDEX outbox_order_to_fan_out ON outbox (order_id, seq) WHERE NOT fanned_out;
-- Replay by time.
CREATE INDEX outbox_created_at ON outbox (created_at);
