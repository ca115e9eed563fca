-- Orders on their way: what the risk gate approved for a venue account, from "size" until the venue holds the
-- order. GateRisk sizes and reserves under one advisory lock per account, counting every RESERVED row (and the
-- venue's open orders), so two gates can never spend the same headroom; ExecuteOrder places only what was
-- reserved, under the same lock. One live order per account, asset and bar.

CREATE TABLE order_reservations (
    client_order_id text        PRIMARY KEY,      -- the order's idempotency key at the venue
    account         text        NOT NULL,         -- the venue account, e.g. paper-dev, coinbase, oanda
    asset           text        NOT NULL,
    bar_time        timestamptz,                  -- the bar the decision was made on
    side            text        NOT NULL CHECK (side IN ('BUY', 'SELL')),
    quantity        numeric     NOT NULL CHECK (quantity > 0),
    price           numeric     NOT NULL CHECK (price > 0),   -- the price the gate sized it at
    cycle_id        text        NOT NULL,
    status          text        NOT NULL CHECK (status IN ('RESERVED', 'PLACED', 'RELEASED')),
    assessment      jsonb       NOT NULL,         -- the gate's verdict, handed back as-is to a retried gate
    note            text        NOT NULL DEFAULT '',  -- why it was released, or the venue's order status
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,         -- an unplaced reservation stops counting after this
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX order_reservations_one_per_bar
    ON order_reservations (account, asset, bar_time) NULLS NOT DISTINCT WHERE status <> 'RELEASED';
CREATE INDEX order_reservations_reserved_idx ON order_reservations (account) WHERE status = 'RESERVED';
CREATE INDEX order_reservations_cycle_idx ON order_reservations (cycle_id) WHERE status = 'RESERVED';

-- A pending paper order can be cancelled before it fills (PaperBroker.cancel).
ALTER TABLE paper_orders DROP CONSTRAINT paper_orders_status_check;
ALTER TABLE paper_orders ADD CONSTRAINT paper_orders_status_check
    CHECK (status IN ('PENDING', 'FILLED', 'REJECTED', 'CANCELLED'));
