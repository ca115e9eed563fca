-- Models by version (issue 15). The stage's champion is one row of model_champions, the newest; every change
-- (ffe models promote, an experiment's promotion or the rollback of one) appends a row saying who, why and
-- which experiment. "Open the cycle" reads it with the running experiments, once per cycle, and every step of
-- that cycle serves exactly the versions it resolved: a promotion takes effect at the next cycle, whole.
-- No row: the champion is the bundle shipped in the layer (ffe/data/models).

CREATE TABLE model_champions (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    version          text        NOT NULL CHECK (version <> ''),
    previous_version text,                                     -- the champion it replaced (previous_champion)
    set_at           timestamptz NOT NULL DEFAULT now(),
    actor            text        NOT NULL CHECK (actor <> ''),
    reason           text        NOT NULL DEFAULT '',
    experiment_id    text        REFERENCES experiments (id)   -- set when an experiment's promotion (or its
                                                               -- rollback) made the change
);

-- Decisions made while an experiment covered the asset: which experiment, which arm acted, and both arms'
-- model outputs before the risk gate ({"control": {...}, "treatment": {...}}, ffe.contracts.ArmOutput).
-- decision_latency_ms (fetch start to record, less the LLM's time) and bar_close (the decided bar's close)
-- are what the comparison views need: latency per arm and each arm's signal return on the next bar.
ALTER TABLE decisions
    ADD COLUMN experiment_id       text,
    ADD COLUMN arm                 text CHECK (arm IN ('control', 'treatment')),
    ADD COLUMN arms                jsonb,
    ADD COLUMN decision_latency_ms double precision CHECK (decision_latency_ms >= 0),
    ADD COLUMN bar_close           double precision CHECK (bar_close > 0),
    ADD CONSTRAINT decisions_arm_with_experiment CHECK ((experiment_id IS NULL) = (arm IS NULL));

CREATE INDEX decisions_experiment_idx ON decisions (experiment_id, as_of) WHERE experiment_id IS NOT NULL;
