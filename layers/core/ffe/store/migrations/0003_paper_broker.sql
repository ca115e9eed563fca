-- The paper broker's account: cash, positions and orders survive across cycles (and Lambda containers).
-- And the kill switches' memory for every venue account: start-of-day (UTC) equity and peak equity.

CREATE TABLE equity_marks (
    account          text        PRIMARY KEY,   -- e.g. paper-dev, coinbase-prod
    day_start_date   date        NOT NULL,
    day_start_equity numeric     NOT NULL,
    peak_equity      numeric     NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE paper_accounts (
    id          text        PRIMARY KEY,          -- e.g. the stage: one paper account per stage
    currency    text        NOT NULL,
    cash        numeric     NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE paper_positions (
    account_id    text    NOT NULL REFERENCES paper_accounts (id) ON DELETE CASCADE,
    asset         text    NOT NULL,
    quantity      numeric NOT NULL,
    average_price numeric NOT NULL,
    mark_price    numeric NOT NULL,               -- the latest bar close seen for the asset
    PRIMARY KEY (account_id, asset)
);

CREATE TABLE paper_orders (
    client_order_id text        PRIMARY KEY,      -- idempotency: one order per client id, ever
    account_id      text        NOT NULL REFERENCES paper_accounts (id) ON DELETE CASCADE,
    asset           text        NOT NULL,
    side            text        NOT NULL CHECK (side IN ('BUY', 'SELL')),
    quantity        numeric     NOT NULL CHECK (quantity > 0),
    placed_at       timestamptz NOT NULL,         -- fills at the open of the first bar opening at/after this
    status          text        NOT NULL CHECK (status IN ('PENDING', 'FILLED', 'REJECTED')),
    fill_price      numeric,
    fee             numeric     NOT NULL DEFAULT 0,
    filled_bar_time timestamptz,
    detail          text        NOT NULL DEFAULT ''
);
CREATE INDEX paper_orders_pending_idx ON paper_orders (account_id, asset) WHERE status = 'PENDING';

-- One row per rule per decision, so a retried RecordDecision never doubles a risk event.
CREATE UNIQUE INDEX risk_events_decision_rule_idx ON risk_events (decision_id, rule);
