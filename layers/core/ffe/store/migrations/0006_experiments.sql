-- Experiments (issue 15): a control and a treatment model version, the assets they share, the canary plan and
-- guardrails, and the status. Every status change (and canary step) is a row of experiment_transitions, written
-- in the same transaction as the change. The domain (ffe.domain.experiments) decides which transitions are
-- allowed; "at most one running or paused experiment per asset" cannot be a constraint (assets overlap as sets,
-- NULL meaning the whole universe), so ffe.adapters.experiments checks it under an advisory lock on every start.

CREATE TABLE experiments (
    id                text        PRIMARY KEY,
    control_version   text        NOT NULL,
    treatment_version text        NOT NULL,
    mode              text        NOT NULL CHECK (mode IN ('shadow', 'split')),
    assets            text[]      CHECK (assets IS NULL OR cardinality(assets) > 0),  -- NULL: the universe
    plan              jsonb       NOT NULL CHECK (jsonb_typeof(plan) = 'array' AND jsonb_array_length(plan) > 0),
    step              integer     NOT NULL DEFAULT 0 CHECK (step >= 0 AND step < jsonb_array_length(plan)),
    guardrails        jsonb       NOT NULL CHECK (jsonb_typeof(guardrails) = 'object'),
    status            text        NOT NULL DEFAULT 'draft'
                      CHECK (status IN ('draft', 'running', 'paused', 'stopped', 'promoted', 'rolled_back')),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (control_version <> treatment_version)
);

CREATE INDEX experiments_holding_idx ON experiments (status) WHERE status IN ('running', 'paused');

CREATE TABLE experiment_transitions (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    experiment_id text        NOT NULL REFERENCES experiments (id),
    from_status   text        NOT NULL,
    to_status     text        NOT NULL
                  CHECK (to_status IN ('draft', 'running', 'paused', 'stopped', 'promoted', 'rolled_back')),
    from_step     integer     NOT NULL,
    to_step       integer     NOT NULL,
    at            timestamptz NOT NULL DEFAULT now(),
    actor         text        NOT NULL CHECK (actor <> ''),  -- who: a person, or the function that acted
    trigger       text        NOT NULL CHECK (trigger IN ('manual', 'guardrail', 'canary')),
    reason        text        NOT NULL DEFAULT '',
    evidence      jsonb       NOT NULL DEFAULT '{}'::jsonb    -- the figures behind a guardrail's or canary's call
);

CREATE INDEX experiment_transitions_experiment_idx ON experiment_transitions (experiment_id, at);
