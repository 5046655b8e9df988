-- 0016: less work per appended statement, in the driver and under the store's append lock.
--
-- 1. The common append takes each statement's filter terms once.
--
-- spor_append_statements (0007) received the terms twice: as each statement's {term: direct}
-- object for its index row, and again as three parallel arrays (term, statement, direct) for the
-- statement_terms rows, about 27 array elements per statement. The driver checks each array
-- element against abstract base classes in Python, and those arrays were most of the encoding
-- of an append (cProfile of a 100-statement append: 58 checks per statement; client CPU per
-- statement 84 -> 62 us without them). The rows are now unfolded from the objects here.
--
-- 2. A definition whose merge would not change the stored one is left alone before the upsert,
-- not by it. The upsert's ON CONFLICT DO UPDATE ... WHERE locks the conflicting row (a WAL
-- record and a dirtied page) before its WHERE finds there is nothing to change, and nearly
-- every statement names activities whose definitions are stored already (its module, course
-- and programme). Appends of a store hold its lock, so no other writer can change a row between
-- the filter and the upsert; the upsert keeps its WHERE for callers without the lock.
-- "Would not change" now means what the merge would do (spor_definition_unchanged, tested
-- against the merge). 0007 asked whether the stored definition contained the new one (jsonb @>),
-- which also held for a property the new definition replaces with less: fewer extension keys,
-- a shorter choices list. Those were never applied, against
-- the rule that properties other than the language maps come from the latest statement (and
-- against the fold of one batch in Python, which did apply them).
--
-- 3. Both functions use generic plans. PL/pgSQL plans each statement with the call's values
-- until a generic plan looks no dearer; with a few statements per call the arrays make the
-- custom plans look cheaper, so every call planned its statements again. Their plans do
-- not depend on the values (inserts from unnest, lookups by key). pg_stat_statements, one
-- statement per call: 920-1,000 -> 700-750 us per spor_append_statements call (the definition
-- upsert inside it 430-460 -> 210-230 us); no change at 100 statements per call.

-- The canonical definition merge, once (lrs.ops.activities.merge_definition is the same rule):
-- the language maps name and description merged key by key, every other property replaced.
CREATE FUNCTION spor_merge_definition(stored jsonb, incoming jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT stored || incoming
        || CASE WHEN jsonb_typeof(stored->'name') = 'object' AND jsonb_typeof(incoming->'name') = 'object'
                THEN jsonb_build_object('name', (stored->'name') || (incoming->'name'))
                ELSE '{}'::jsonb END
        || CASE WHEN jsonb_typeof(stored->'description') = 'object' AND jsonb_typeof(incoming->'description') = 'object'
                THEN jsonb_build_object('description', (stored->'description') || (incoming->'description'))
                ELSE '{}'::jsonb END
$$;

-- Whether merging ``incoming`` into ``stored`` would leave it as it is, without building the
-- merge (building it cost ~25 us per definition, under the store's lock): containment, and an
-- exact match of each member that is an object or array but not a language map, where
-- containment would also accept fewer keys or elements that the merge puts in place of the
-- stored ones. Those members are listed: a definition has no others (the statement schema
-- refuses unknown properties, statements_schema/), and the rest are strings.
CREATE FUNCTION spor_definition_unchanged(stored jsonb, incoming jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT stored @> incoming
       AND coalesce(incoming->'extensions' = stored->'extensions', true)
       AND coalesce(incoming->'correctResponsesPattern' = stored->'correctResponsesPattern', true)
       AND coalesce(incoming->'choices' = stored->'choices', true)
       AND coalesce(incoming->'scale' = stored->'scale', true)
       AND coalesce(incoming->'source' = stored->'source', true)
       AND coalesce(incoming->'target' = stored->'target', true)
       AND coalesce(incoming->'steps' = stored->'steps', true)
$$;

CREATE OR REPLACE FUNCTION spor_upsert_definitions(p_store bigint, p_ids text[], p_defs jsonb[],
                                                   p_name_keys text[], p_names text[])
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    INSERT INTO activities AS a (store_id, activity_id, definition)
    SELECT p_store, u.id, u.def FROM unnest(p_ids, p_defs) AS u(id, def)
    -- a scalar subquery, not NOT EXISTS: the planner turns NOT EXISTS into an anti join that
    -- hashes the store's whole activities table on every append
    WHERE NOT coalesce((SELECT spor_definition_unchanged(x.definition, u.def) FROM activities x
                        WHERE x.store_id = p_store AND x.activity_id = u.id), false)
    ON CONFLICT (store_id, activity_id) DO UPDATE
        SET definition = spor_merge_definition(a.definition, EXCLUDED.definition)
        WHERE NOT spor_definition_unchanged(a.definition, EXCLUDED.definition);
    INSERT INTO agent_names (store_id, agent_key, name)
    SELECT p_store, k, n FROM unnest(p_name_keys, p_names) AS u(k, n)
    ON CONFLICT (store_id, agent_key, name) DO NOTHING;
END
$$;

DROP FUNCTION spor_append_statements(bigint, uuid[], text[], boolean[], text[], jsonb[], text[],
                                     text[], integer[], boolean[], text[], text[], bytea[],
                                     text[], jsonb[], text[], text[]);

-- p_bodies: each statement's JSON without "stored", and without "timestamp" where p_fill_ts
-- says the LRS fills it in (with the stored time, xAPI Data 2.4.7); both are put first.
-- p_terms: each statement's filter terms {term: direct}, kept on its index row and unfolded
-- here into its statement_terms rows.
-- Returns the stored time of the append, or NULL when the general path must take it.
CREATE FUNCTION spor_append_statements(
    p_store bigint, p_ids uuid[], p_bodies text[], p_fill_ts boolean[], p_sha2s text[],
    p_terms jsonb[], p_authority text[],
    p_att_sha2 text[], p_att_type text[], p_att_content bytea[],
    p_def_ids text[], p_defs jsonb[], p_name_keys text[], p_names text[]
) RETURNS timestamptz LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_last   bigint;
    v_stored timestamptz;
    v_text   text;
    v_constraint text;
BEGIN
    PERFORM set_config('spor.store_ids', p_store::text, true),
            set_config('spor.write_store', p_store::text, true),
            pg_advisory_xact_lock(1397772114, p_store::int);
    IF EXISTS (SELECT 1 FROM statements WHERE store_id = p_store AND refers_to = ANY (p_ids)) THEN
        RETURN NULL;
    END IF;
    SELECT last_position,
           greatest(coalesce(last_stored, '-infinity'), date_trunc('milliseconds', clock_timestamp()))
      INTO v_last, v_stored
      FROM stores WHERE id = p_store;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'store % does not exist', p_store USING ERRCODE = 'foreign_key_violation';
    END IF;
    -- the same text as lrs.ops.timestamps.format_timestamp of a millisecond time
    v_text := to_char(v_stored AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');

    BEGIN
        -- an id stored already: the primary key says so (a check by query could be planned as
        -- a scan of the store before its first ANALYZE); nothing of the call is kept
        INSERT INTO statements (store_id, statement_id, position, stored, voided, voids, refers_to,
                                authority_key, attachment_sha2s, terms)
        SELECT p_store, u.id, v_last + u.n, v_stored, false, NULL, NULL, u.authority,
               coalesce(string_to_array(u.sha2s, ','), '{}'), u.terms
        FROM unnest(p_ids, p_sha2s, p_terms, p_authority) WITH ORDINALITY AS u(id, sha2s, terms, authority, n);
    EXCEPTION WHEN unique_violation THEN
        GET STACKED DIAGNOSTICS v_constraint = CONSTRAINT_NAME;
        IF v_constraint = 'statements_pkey' THEN
            RETURN NULL;
        END IF;
        RAISE;
    END;

    INSERT INTO events (store_id, position, kind, recorded_at, statement_id, payload)
    SELECT p_store, v_last + u.n, 'statement', v_stored, u.id,
           ('{"stored":"' || v_text || '",'
            || CASE WHEN u.fill THEN '"timestamp":"' || v_text || '",' ELSE '' END
            || substr(u.body, 2))::json
    FROM unnest(p_ids, p_bodies, p_fill_ts) WITH ORDINALITY AS u(id, body, fill, n);

    INSERT INTO statement_terms (store_id, term, position, direct)
    SELECT p_store, t.key, v_last + u.n, t.value::boolean
    FROM unnest(p_terms) WITH ORDINALITY AS u(terms, n), jsonb_each(u.terms) AS t;

    IF cardinality(p_att_sha2) > 0 THEN
        INSERT INTO attachments (store_id, sha2, content_type, content)
        SELECT p_store, a.sha2, a.content_type, a.content
        FROM unnest(p_att_sha2, p_att_type, p_att_content) AS a(sha2, content_type, content)
        ON CONFLICT (store_id, sha2) DO NOTHING;
    END IF;

    IF cardinality(p_def_ids) > 0 OR cardinality(p_name_keys) > 0 THEN
        PERFORM spor_upsert_definitions(p_store, p_def_ids, p_defs, p_name_keys, p_names);
    END IF;

    UPDATE stores SET last_position = v_last + cardinality(p_ids), last_stored = v_stored WHERE id = p_store;
    RETURN v_stored;
END
$$;

ALTER FUNCTION spor_upsert_definitions(bigint, text[], jsonb[], text[], text[])
    SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION spor_append_statements(bigint, uuid[], text[], boolean[], text[], jsonb[], text[],
                                      text[], text[], bytea[], text[], jsonb[], text[], text[])
    SET plan_cache_mode = force_generic_plan;
