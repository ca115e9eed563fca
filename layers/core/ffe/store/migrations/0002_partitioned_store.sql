-- The decision store proper: cycles, month-partitioned decisions, risk events, executions, failures.
-- Replaces 0001's flat decisions table (its rows are moved). Postgres 15+ / Aurora PostgreSQL 15+,
-- no extensions. Partitions are made on demand by ffe_ensure_decision_partition (called by every
-- writer before it inserts) and dropped by ffe_drop_decision_partitions (retention).

CREATE TABLE cycles (
    id            text        PRIMARY KEY,                  -- the cycle id (the schedule event's id)
    execution_arn text,
    stage         text        NOT NULL,
    timeframe     text,                                     -- as given: a bad one fails each asset, recorded
    as_of         timestamptz,                              -- NULL when the input's as_of was unreadable
    assets        jsonb       NOT NULL DEFAULT '[]'::jsonb,
    status        text        NOT NULL CHECK (status IN ('RUNNING', 'SUCCEEDED', 'FAILED')),
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz
);
CREATE INDEX cycles_finished_idx ON cycles (finished_at DESC NULLS LAST);
CREATE INDEX cycles_as_of_idx ON cycles (as_of DESC);

ALTER TABLE decisions RENAME TO decisions_0001;
ALTER TABLE decisions_0001 RENAME CONSTRAINT decisions_natural_key TO decisions_0001_natural_key;
ALTER INDEX decisions_asset_created_idx RENAME TO decisions_0001_asset_created_idx;

-- Partitioned by the cycle's as_of: the same on every retry, so a retried write always meets its first
-- attempt in the same partition (the natural key must contain the partition key).
CREATE TABLE decisions (
    id                          bigint GENERATED ALWAYS AS IDENTITY,
    cycle_id                    text        NOT NULL,
    execution_id                text,
    stage                       text,
    asset                       text        NOT NULL,
    timeframe                   text        NOT NULL,
    as_of                       timestamptz NOT NULL,
    bar_time                    timestamptz,
    action                      text        NOT NULL CHECK (action IN ('BUY', 'SELL', 'HOLD')),
    confidence                  double precision NOT NULL CHECK (confidence BETWEEN 0 AND 1),
    size                        numeric,                        -- set by the risk gate; NULL before it exists
    stale                       boolean     NOT NULL,
    reason                      text        NOT NULL,
    reasons                     jsonb       NOT NULL DEFAULT '{}'::jsonb,  -- signals, route, gate verdicts
    data_age_seconds            double precision,
    staleness_threshold_seconds integer,
    model                       text        NOT NULL,
    model_version               text        NOT NULL,
    regime                      text,
    source                      jsonb       NOT NULL,
    input_sha256                text        NOT NULL,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, as_of),
    CONSTRAINT decisions_natural_key UNIQUE NULLS NOT DISTINCT (as_of, cycle_id, asset, bar_time)
) PARTITION BY RANGE (as_of);

-- The API's queries: newest first with optional filters, keyset pagination on (as_of, id).
CREATE INDEX decisions_as_of_id_idx ON decisions (as_of DESC, id DESC);
CREATE INDEX decisions_asset_as_of_idx ON decisions (asset, as_of DESC, id DESC);
CREATE INDEX decisions_cycle_idx ON decisions (cycle_id);
CREATE INDEX decisions_id_idx ON decisions (id);

CREATE FUNCTION ffe_ensure_decision_partition(at timestamptz) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    month_start timestamptz := date_trunc('month', at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    name text := 'decisions_' || to_char(month_start AT TIME ZONE 'UTC', 'YYYY_MM');
BEGIN
    IF to_regclass(name) IS NULL THEN
        -- Concurrent writers: one creates the partition; the others may still have a stale catalog view
        -- when they get here, so "already exists" is the expected outcome for them, not an error.
        BEGIN
            EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF decisions FOR VALUES FROM (%L) TO (%L)',
                           name, month_start, month_start + interval '1 month');
        EXCEPTION WHEN duplicate_table OR unique_violation THEN
            NULL;
        END;
    END IF;
    RETURN name;
END $$;

-- Retention: drop whole months that ended more than keep_months ago; returns the dropped partitions.
CREATE FUNCTION ffe_drop_decision_partitions(keep_months integer, now_ timestamptz DEFAULT now())
RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    cutoff timestamptz := (date_trunc('month', now_ AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')
                          - make_interval(months => keep_months);
    part record;
BEGIN
    IF keep_months < 1 THEN
        RAISE EXCEPTION 'keep_months must be at least 1, got %', keep_months;
    END IF;
    FOR part IN
        SELECT c.relname AS name,
               (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz AS upper
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'decisions'::regclass
    LOOP
        IF part.upper <= cutoff THEN
            EXECUTE format('DROP TABLE %I', part.name);
            RETURN NEXT part.name;
        END IF;
    END LOOP;
END $$;

-- Move 0001's rows (one partition per month they span).
SELECT ffe_ensure_decision_partition(m) FROM (SELECT DISTINCT date_trunc('month', as_of) AS m FROM decisions_0001) months;
INSERT INTO decisions (cycle_id, execution_id, asset, timeframe, as_of, bar_time, action, confidence, stale, reason,
                       reasons, data_age_seconds, staleness_threshold_seconds, model, model_version, source,
                       input_sha256, created_at)
SELECT cycle_id, execution_id, asset, timeframe, as_of, bar_time, action, confidence, stale, reason,
       jsonb_build_object('signals', signals), data_age_seconds, staleness_threshold_seconds, model, model_version,
       source, input_sha256, created_at
FROM decisions_0001;
DROP TABLE decisions_0001;

CREATE TABLE risk_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    decision_id bigint      NOT NULL,
    as_of       timestamptz NOT NULL,    -- with decision_id, locates the decision's partition
    cycle_id    text        NOT NULL,
    asset       text        NOT NULL,
    rule        text        NOT NULL,
    blocked     boolean     NOT NULL,
    detail      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX risk_events_decision_idx ON risk_events (decision_id);

CREATE TABLE executions (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    decision_id     bigint      NOT NULL,
    as_of           timestamptz NOT NULL,
    venue           text        NOT NULL,
    mode            text        NOT NULL CHECK (mode IN ('paper', 'live')),
    client_order_id text        NOT NULL UNIQUE,   -- idempotency key sent to the venue
    venue_order_id  text,
    side            text        NOT NULL CHECK (side IN ('BUY', 'SELL')),
    quantity        numeric     NOT NULL,
    price           numeric,
    status          text        NOT NULL,
    detail          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX executions_decision_idx ON executions (decision_id);

ALTER TABLE failures ADD COLUMN stage text;
CREATE INDEX failures_cycle_idx ON failures (cycle_id);
CREATE INDEX failures_created_idx ON failures (created_at DESC);
