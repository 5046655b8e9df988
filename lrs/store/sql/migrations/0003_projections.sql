-- 0003: asynchronous projections (read models) and the inline index of reference-data events.
--
-- Read models live in one schema per projection (rm_transcript, rm_course_status,
-- rm_compliance). Each schema holds the projection's tables *and* its checkpoint, so a rebuild
-- can fill a fresh schema from position 0 and swap it in with two ALTER SCHEMA ... RENAME in one
-- transaction: readers see the old version until that commit, and data and checkpoint always
-- travel together. See docs/projections.md.
--
-- Control tables (leases, the reference-data key index) live in the schema `projections`.

CREATE SCHEMA projections;

-- Who works on which (projection, store). A lease is only an efficiency device: the checkpoint
-- row lock taken by every apply transaction is what guarantees exactly-once application.
CREATE TABLE projections.leases (
    projection  text NOT NULL,
    store_id    bigint NOT NULL REFERENCES stores (id),
    owner       text NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (projection, store_id)
);

-- Inline projection of reference-data events (written in the append's transaction): the digest
-- of the newest event per (kind, key), so re-importing an unchanged row appends nothing.
CREATE TABLE projections.reference_keys (
    store_id  bigint NOT NULL REFERENCES stores (id),
    kind      text NOT NULL,
    key       text NOT NULL,
    digest    bytea NOT NULL,
    position  bigint NOT NULL,
    PRIMARY KEY (store_id, kind, key)
);

-- Create the tables of a read model in schema `target`: its checkpoint plus the table families
-- it keeps. The one definition of read-model tables, used by this migration for the live
-- schemas and by `spor projections rebuild` for the fresh schema it fills.
CREATE FUNCTION projections.create_read_model(target text, families text[]) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE tbl text;
BEGIN
    EXECUTE format($$
        CREATE TABLE %1$I.checkpoint (
            store_id         bigint PRIMARY KEY,
            position         bigint NOT NULL DEFAULT 0,
            updated_at       timestamptz NOT NULL DEFAULT now(),
            failed_position  bigint,
            error            text,
            failed_at        timestamptz
        )$$, target);
    IF 'voided' = ANY(families) THEN
        EXECUTE format($$
            CREATE TABLE %1$I.voided (
                store_id      bigint NOT NULL,
                statement_id  uuid NOT NULL,
                PRIMARY KEY (store_id, statement_id)
            )$$, target);
    END IF;
    IF 'completions' = ANY(families) THEN
        -- completed / passed statements (transcript entries, compliance evidence)
        EXECUTE format($$
            CREATE TABLE %1$I.completions (
                store_id      bigint NOT NULL,
                statement_id  uuid NOT NULL,
                ifi           text NOT NULL,
                activity_id   text NOT NULL,
                verb          text NOT NULL,
                success       boolean,
                score         double precision,
                duration_s    double precision,
                completed_at  timestamptz NOT NULL,
                position      bigint NOT NULL,
                PRIMARY KEY (store_id, statement_id)
            );
            CREATE INDEX ON %1$I.completions (store_id, ifi, activity_id, completed_at);
            CREATE INDEX ON %1$I.completions (store_id, activity_id)$$, target);
    END IF;
    IF 'activity' = ANY(families) THEN
        -- one row per (statement, course) for statements about a course or inside its context
        EXECUTE format($$
            CREATE TABLE %1$I.activity_facts (
                store_id      bigint NOT NULL,
                statement_id  uuid NOT NULL,
                course_id     text NOT NULL,
                activity_id   text NOT NULL,
                ifi           text NOT NULL,
                verb          text NOT NULL,
                success       boolean,
                score         double precision,
                duration_s    double precision,
                at            timestamptz NOT NULL,
                position      bigint NOT NULL,
                PRIMARY KEY (store_id, statement_id, course_id)
            );
            CREATE INDEX ON %1$I.activity_facts (store_id, course_id, ifi)$$, target);
    END IF;
    IF 'links' = ANY(families) THEN
        EXECUTE format($$
            CREATE TABLE %1$I.links (
                store_id   bigint NOT NULL,
                ifi        text NOT NULL,
                person_id  text NOT NULL,
                PRIMARY KEY (store_id, ifi)
            );
            CREATE INDEX ON %1$I.links (store_id, person_id)$$, target);
    END IF;
    IF 'org' = ANY(families) THEN
        -- effective-dated versions of org units: a version holds from valid_from to the next
        EXECUTE format($$
            CREATE TABLE %1$I.units (
                store_id    bigint NOT NULL,
                unit_id     text NOT NULL,
                valid_from  date NOT NULL,
                id_kind     text NOT NULL,
                name        text NOT NULL,
                parent_id   text,
                level       text NOT NULL,
                closed      boolean NOT NULL DEFAULT false,
                PRIMARY KEY (store_id, unit_id, valid_from)
            )$$, target);
    END IF;
    IF 'employments' = ANY(families) THEN
        EXECUTE format($$
            CREATE TABLE %1$I.employments (
                store_id       bigint NOT NULL,
                person_id      text NOT NULL,
                employment_id  text NOT NULL,
                unit_id        text NOT NULL,
                role           text NOT NULL,
                profession     text NOT NULL,
                valid_from     date NOT NULL,
                valid_to       date,
                PRIMARY KEY (store_id, person_id, employment_id)
            );
            CREATE INDEX ON %1$I.employments (store_id, unit_id)$$, target);
    END IF;
    IF 'requirements' = ANY(families) THEN
        EXECUTE format($$
            CREATE TABLE %1$I.requirements (
                store_id        bigint NOT NULL,
                requirement_id  text NOT NULL,
                name            text NOT NULL,
                activity_ids    text[] NOT NULL,
                units           text[] NOT NULL,
                roles           text[] NOT NULL,
                professions     text[] NOT NULL,
                validity_days   integer,
                PRIMARY KEY (store_id, requirement_id)
            )$$, target);
    END IF;
    -- The service's role (spor_app, migration 0004) reads read models under row-level security
    -- like every store-keyed table: only the stores named in spor.store_ids. The expression is
    -- spor_read_stores() of 0004, written out because this migration runs first. Workers and
    -- rebuilds connect as the owner, which row-level security does not restrict.
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'spor_app') THEN
        CREATE ROLE spor_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO spor_app', target);
    FOR tbl IN SELECT c.relname FROM pg_class c
               WHERE c.relnamespace = target::regnamespace AND c.relkind = 'r' ORDER BY 1
    LOOP
        EXECUTE format('GRANT SELECT ON %I.%I TO spor_app', target, tbl);
        EXECUTE format('ALTER TABLE %I.%I ENABLE ROW LEVEL SECURITY', target, tbl);
        EXECUTE format($$CREATE POLICY store_read ON %I.%I FOR SELECT TO spor_app USING (store_id = ANY (
            coalesce(string_to_array(nullif(current_setting('spor.store_ids', true), ''), ',')::bigint[], '{}')))$$,
            target, tbl);
    END LOOP;
END;
$fn$;

CREATE SCHEMA rm_transcript;
SELECT projections.create_read_model('rm_transcript', ARRAY['voided', 'completions', 'links', 'requirements']);
CREATE SCHEMA rm_course_status;
SELECT projections.create_read_model('rm_course_status', ARRAY['voided', 'activity', 'links', 'employments', 'org']);
CREATE SCHEMA rm_compliance;
SELECT projections.create_read_model('rm_compliance',
                                     ARRAY['voided', 'completions', 'links', 'employments', 'org', 'requirements']);

-- The service reads leases for the status view, under the same row-level security.
GRANT USAGE ON SCHEMA projections TO spor_app;
GRANT SELECT ON projections.leases TO spor_app;
ALTER TABLE projections.leases ENABLE ROW LEVEL SECURITY;
CREATE POLICY store_read ON projections.leases FOR SELECT TO spor_app USING (store_id = ANY (
    coalesce(string_to_array(nullif(current_setting('spor.store_ids', true), ''), ',')::bigint[], '{}')));
