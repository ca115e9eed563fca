-- Database roles (issue 17 §2; docs/database-roles.md). Every function used to connect as the Aurora master user
-- and could run any DDL. From here on:
--
--   ffe_migrate     NOLOGIN. Owns every schema object; migrations after this one run under SET ROLE ffe_migrate
--                   (ffe.store.migrate), so what they create is its own and covered by the default privileges below.
--                   Granted to the user who runs this migration (the master user, through MigrateDatabase only).
--   ffe_app         the decision cycle (GateRisk, ExecuteOrder, RecordDecision, Preflight): SELECT/INSERT/UPDATE on
--                   the tables it uses, never DELETE, TRUNCATE or any DDL. New decision partitions come from
--                   ffe_ensure_decision_partition, which runs as its owner (SECURITY DEFINER).
--   ffe_api         the API's reads: SELECT only.
--   ffe_experiments the API's writes (POST /experiments, the transition routes, PUT /models/champion): the three
--                   experiment tables only.
--   ffe_retention   RetainDecisions: reads the decision partitions (the export) and drops expired ones through
--                   ffe_drop_decision_partitions (SECURITY DEFINER), the only DROP anyone but ffe_migrate can cause.
--
-- The login roles are created NOLOGIN, without a password: MigrateDatabase gives each LOGIN and the password of its
-- Secrets Manager secret (functions/migrate_database). Roles are cluster-wide: created once, granted per database.
-- Idempotent: every statement can run again (another database of the same cluster, a re-applied migration).

DO $$
DECLARE
    role text;
BEGIN
    FOREACH role IN ARRAY ARRAY['ffe_migrate', 'ffe_app', 'ffe_api', 'ffe_experiments', 'ffe_retention'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = role) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', role);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN  -- another database's migration, concurrently
                NULL;
            END;
        END IF;
    END LOOP;
END $$;

-- The migrating user may act as ffe_migrate (ALTER ... OWNER TO and SET ROLE need it; Aurora's master is no
-- superuser, but its CREATEROLE lets it grant the roles it created).
GRANT ffe_migrate TO CURRENT_USER;

-- Nobody creates in public but the owner role (PostgreSQL 15 no longer grants it to PUBLIC; an upgraded database may).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO ffe_migrate;
GRANT USAGE ON SCHEMA public TO ffe_app, ffe_api, ffe_experiments, ffe_retention;

-- Ownership of what the migrations made so far (tables with their partitions, indexes and identity sequences, views,
-- functions) moves to ffe_migrate.
DO $$
DECLARE
    obj record;
BEGIN
    FOR obj IN
        SELECT c.oid::regclass AS name FROM pg_class c
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
          AND c.relowner <> 'ffe_migrate'::regrole
    LOOP
        EXECUTE format('ALTER TABLE %s OWNER TO ffe_migrate', obj.name);
    END LOOP;
    FOR obj IN
        SELECT p.oid::regprocedure AS name FROM pg_proc p
        WHERE p.pronamespace = 'public'::regnamespace AND p.proowner <> 'ffe_migrate'::regrole
    LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO ffe_migrate', obj.name);
    END LOOP;
END $$;

-- Functions: no EXECUTE for PUBLIC, now or later; each is granted to the roles that call it.
ALTER DEFAULT PRIVILEGES FOR ROLE ffe_migrate REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

-- Partitions are created by the writers and dropped by retention, through these two functions, as their owner.
-- A new partition is reached through "decisions" (whose grants apply); only the export reads it by name.
CREATE OR REPLACE FUNCTION ffe_ensure_decision_partition(at timestamptz) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
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
            EXECUTE format('REVOKE ALL ON %I FROM ffe_app, ffe_api, ffe_experiments', name);
        EXCEPTION WHEN duplicate_table OR unique_violation THEN
            NULL;
        END;
    END IF;
    RETURN name;
END $$;
ALTER FUNCTION ffe_drop_decision_partitions(integer, timestamptz) SECURITY DEFINER SET search_path = public, pg_temp;
REVOKE ALL ON FUNCTION ffe_ensure_decision_partition(timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION ffe_drop_decision_partitions(integer, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ffe_ensure_decision_partition(timestamptz) TO ffe_app;
GRANT EXECUTE ON FUNCTION ffe_drop_decision_partitions(integer, timestamptz) TO ffe_retention;

-- ffe_app: what the cycle's statements need (ffe.adapters.store, reservations, paper_broker, equity_marks,
-- experiments; "Close the cycle" reviews experiments and may promote a champion). ON CONFLICT DO UPDATE and
-- SELECT ... FOR UPDATE need UPDATE; COPY FROM (backfill) needs INSERT. model_champions is append-only, but the
-- champion's writer takes LOCK TABLE ... SHARE ROW EXCLUSIVE (ffe.adapters.experiments), which needs UPDATE.
GRANT SELECT, INSERT ON decisions, risk_events, executions, failures, experiment_transitions TO ffe_app;
GRANT SELECT, INSERT, UPDATE ON cycles, order_reservations, equity_marks, paper_accounts, paper_positions,
    paper_orders, experiments, model_champions TO ffe_app;
GRANT SELECT ON experiment_arm_decisions, experiment_paper_fills TO ffe_app;
-- every role may see which migrations were applied (an offline adapter's on-connect check: ffe.store.migrate)
GRANT SELECT ON schema_migrations TO ffe_app, ffe_api, ffe_experiments, ffe_retention;

-- ffe_api: every table and view, read only.
GRANT SELECT ON ALL TABLES IN SCHEMA public TO ffe_api;

-- ffe_experiments: the experiment routes' tables (ffe.adapters.experiments), nothing else.
GRANT SELECT, INSERT, UPDATE ON experiments, model_champions TO ffe_experiments;  -- UPDATE: the champion's lock
GRANT SELECT, INSERT ON experiment_transitions TO ffe_experiments;

-- ffe_retention: the partitions' rows (COPY of each partition by name) and the catalog; DROP via the function.
GRANT SELECT ON decisions TO ffe_retention;
DO $$
DECLARE
    part regclass;
BEGIN
    FOR part IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'decisions'::regclass LOOP
        EXECUTE format('REVOKE ALL ON %s FROM ffe_app, ffe_api, ffe_experiments', part);
        EXECUTE format('GRANT SELECT ON %s TO ffe_retention', part);
    END LOOP;
END $$;

-- Tables and views later migrations create (as ffe_migrate): the app reads and writes them, never deletes; the
-- API and retention read them. A later migration narrows these where a table needs less.
ALTER DEFAULT PRIVILEGES FOR ROLE ffe_migrate IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE ON TABLES TO ffe_app;
ALTER DEFAULT PRIVILEGES FOR ROLE ffe_migrate IN SCHEMA public
    GRANT SELECT ON TABLES TO ffe_api, ffe_retention;
ALTER DEFAULT PRIVILEGES FOR ROLE ffe_migrate IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO ffe_app;
