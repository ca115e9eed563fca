-- Decisions and asset-level failures of every decision cycle.
-- NULLS NOT DISTINCT (Postgres 15+, Aurora PostgreSQL 15+) keeps the natural keys unique even when a
-- stale asset had no bars at all (bar_time NULL) or a failure happened before the asset was known.

CREATE TABLE decisions (
    id                          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    cycle_id                    text        NOT NULL,
    execution_id                text,
    asset                       text        NOT NULL,
    timeframe                   text        NOT NULL,
    as_of                       timestamptz NOT NULL,
    bar_time                    timestamptz,
    action                      text        NOT NULL CHECK (action IN ('BUY', 'SELL', 'HOLD')),
    confidence                  double precision NOT NULL CHECK (confidence BETWEEN 0 AND 1),
    stale                       boolean     NOT NULL,
    reason                      text        NOT NULL,
    data_age_seconds            double precision,
    staleness_threshold_seconds integer,
    model                       text        NOT NULL,
    model_version               text        NOT NULL,
    signals                     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    source                      jsonb       NOT NULL,
    input_sha256                text        NOT NULL,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT decisions_natural_key UNIQUE NULLS NOT DISTINCT (cycle_id, asset, bar_time)
);

CREATE INDEX decisions_asset_created_idx ON decisions (asset, created_at DESC);

CREATE TABLE failures (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    cycle_id     text,
    execution_id text,
    asset        text,
    timeframe    text,
    as_of        text,
    error_class  text        NOT NULL,
    message      text        NOT NULL,
    cause        jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT failures_natural_key UNIQUE NULLS NOT DISTINCT (cycle_id, asset)
);
