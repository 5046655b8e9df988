-- 0004: tenancy enforced by PostgreSQL itself (row-level security), credential expiry/rotation
-- support and regions, and the append-only audit trail of reads.
--
-- The service connects with role spor_app (a startup parameter, so asyncpg's RESET ALL on
-- releasing a connection keeps it). spor_app is subject to row-level security: every table
-- keyed by store_id shows only the stores named in the session setting spor.store_ids, and
-- accepts writes only for spor.write_store. A query that forgets its store filter therefore
-- still returns nothing from another store. Migrations, the CLI and tests connect as the owner.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'spor_app') THEN
        CREATE ROLE spor_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
    EXECUTE format('GRANT spor_app TO %I', current_user);
END
$$;

-- The stores a session may read / the store it may write (empty: none).
CREATE FUNCTION spor_read_stores() RETURNS bigint[] LANGUAGE sql STABLE AS $$
    SELECT coalesce(string_to_array(nullif(current_setting('spor.store_ids', true), ''), ',')::bigint[], '{}')
$$;
CREATE FUNCTION spor_write_store() RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT nullif(current_setting('spor.write_store', true), '')::bigint
$$;

-- Put a store-keyed table under row-level security; later migrations call it for new tables.
CREATE FUNCTION spor_protect(tbl regclass) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('CREATE POLICY store_read ON %s FOR SELECT TO spor_app USING (store_id = ANY (spor_read_stores()))', tbl);
    EXECUTE format('CREATE POLICY store_insert ON %s FOR INSERT TO spor_app WITH CHECK (store_id = spor_write_store())', tbl);
    EXECUTE format('CREATE POLICY store_update ON %s FOR UPDATE TO spor_app USING (store_id = spor_write_store()) WITH CHECK (store_id = spor_write_store())', tbl);
    EXECUTE format('CREATE POLICY store_delete ON %s FOR DELETE TO spor_app USING (store_id = spor_write_store())', tbl);
END
$$;

DO $$
DECLARE t text;
BEGIN
    FOR t IN
        SELECT c.table_name FROM information_schema.columns c
        JOIN information_schema.tables tb USING (table_schema, table_name)
        WHERE c.table_schema = 'public' AND c.column_name = 'store_id' AND tb.table_type = 'BASE TABLE'
          AND c.table_name NOT IN ('credentials')
        ORDER BY 1
    LOOP
        PERFORM spor_protect(t::regclass);
    END LOOP;
END
$$;

-- Regions: a regional credential may read (never write) every store of its region.
ALTER TABLE stores ADD COLUMN region text;
ALTER TABLE credentials ADD COLUMN region text;
ALTER TABLE credentials ADD COLUMN rotated_from bigint REFERENCES credentials (id);

-- Who read whose records: append-only, like the event log.
CREATE TABLE audit_log (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at             timestamptz NOT NULL DEFAULT now(),
    store_id       bigint NOT NULL REFERENCES stores (id),
    credential_id  bigint REFERENCES credentials (id),
    person         text,           -- the agent key of a person signed in with OpenID Connect
    action         text NOT NULL,  -- e.g. 'statements.query', 'statements.get'
    request        jsonb NOT NULL, -- what was asked (parameters; never secrets)
    records        integer NOT NULL
);
CREATE INDEX audit_log_credential ON audit_log (credential_id, at);
CREATE INDEX audit_log_person ON audit_log (person, at) WHERE person IS NOT NULL;
CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION refuse_event_change();
CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_event_change();
-- The service may add audit rows for the stores it serves, and never read or change them.
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY audit_insert ON audit_log FOR INSERT TO spor_app WITH CHECK (store_id = ANY (spor_read_stores()));

-- What spor_app may do at all. The log and the audit trail get no UPDATE or DELETE privilege:
-- append-only twice over (privileges and triggers).
GRANT USAGE ON SCHEMA public TO spor_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO spor_app;
REVOKE UPDATE, DELETE, TRUNCATE ON events, audit_log FROM spor_app;
REVOKE ALL ON schema_migrations FROM spor_app;
GRANT SELECT ON schema_migrations TO spor_app;
REVOKE INSERT, DELETE ON stores FROM spor_app;
REVOKE INSERT, UPDATE, DELETE ON credentials FROM spor_app;
REVOKE SELECT ON audit_log FROM spor_app;
GRANT INSERT ON audit_log TO spor_app;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO spor_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO spor_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE ON SEQUENCES TO spor_app;
