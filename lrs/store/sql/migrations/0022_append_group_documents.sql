-- 0022: the one-call append takes its per-statement values as a few documents, not as arrays
-- with one element per statement.
--
-- The driver encodes an array element by element in Python: for a jsonb[] it calls the json
-- codec (lrs.store.db) once per element, for a text[] it checks each element against abstract
-- base classes. Measured on a 200-statement call (client CPU per statement): the terms as
-- jsonb[] 6.1 us, as one JSON document 0.8 us; the bodies as text[] 4.4 us, as one text
-- 1.4 us; the definitions as jsonb[] 6.3 us. The whole call was 21 us per statement, a sixth
-- of the server's CPU for an append in bench/ingest (b).
--
-- So spor_append_group takes:
--   p_bodies  each statement's JSON (as before: without "stored", and without "timestamp" where
--             p_fill_ts says the LRS fills it in), in UTF-8, joined by the byte 0x1E (RECORD
--             SEPARATOR). JSON text never holds a control character unescaped (RFC 8259,
--             section 7), and UTF-8 uses no byte below 0x80 inside a multi-byte character, so
--             the separator cannot occur inside a body. bytea, not text: the driver takes the
--             bytes orjson made as they are, where a text parameter wants a Python str, which
--             keeps a second, UTF-8 copy of itself once encoded (a server process held ~20 MB
--             more at its peak, loading batches of 1,000).
--   p_terms   a JSON array: per statement its filter terms {term: direct}.
--   p_defs    a JSON object: Activity id -> definition, folded over the group in Python.
--   p_names   a JSON array of [agent key, name] pairs.
-- The documents are unpacked before the store's lock is taken, so the lock is not held longer.
--
-- spor_append_statements and spor_upsert_definitions (0016) stay for servers of the previous
-- release during a rolling upgrade; a later migration drops them.

CREATE FUNCTION spor_merge_definitions(p_store bigint, p_defs jsonb, p_names jsonb)
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    -- the same rule as spor_upsert_definitions (0016): a definition whose merge would change
    -- nothing is left alone before the upsert (a scalar subquery: NOT EXISTS is planned as an
    -- anti join that hashes the store's whole activities table)
    INSERT INTO activities AS a (store_id, activity_id, definition)
    SELECT p_store, d.key, d.value FROM jsonb_each(p_defs) AS d
    WHERE NOT coalesce((SELECT spor_definition_unchanged(x.definition, d.value) FROM activities x
                        WHERE x.store_id = p_store AND x.activity_id = d.key), false)
    ON CONFLICT (store_id, activity_id) DO UPDATE
        SET definition = spor_merge_definition(a.definition, EXCLUDED.definition)
        WHERE NOT spor_definition_unchanged(a.definition, EXCLUDED.definition);
    INSERT INTO agent_names (store_id, agent_key, name)
    SELECT p_store, n->>0, n->>1 FROM jsonb_array_elements(p_names) AS n
    ON CONFLICT (store_id, agent_key, name) DO NOTHING;
END
$$;

-- Returns the stored time of the append, or NULL when the general path must take it (an id is
-- stored already, or a stored statement refers to one of the new ids), having written nothing.
CREATE FUNCTION spor_append_group(
    p_store bigint, p_ids uuid[], p_bodies bytea, p_fill_ts boolean[], p_sha2s text[],
    p_terms jsonb, p_authority text[],
    p_att_sha2 text[], p_att_type text[], p_att_content bytea[],
    p_defs jsonb, p_names jsonb
) RETURNS timestamptz LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    -- convert_from checks the UTF-8 (a bad byte is an error, as text would have been)
    v_bodies text[] := string_to_array(convert_from(p_bodies, 'UTF8'), E'\x1e');
    v_terms  jsonb[] := ARRAY(SELECT e FROM jsonb_array_elements(p_terms) WITH ORDINALITY AS x(e, n) ORDER BY n);
    v_last   bigint;
    v_stored timestamptz;
    v_text   text;
    v_constraint text;
BEGIN
    IF cardinality(v_bodies) IS DISTINCT FROM cardinality(p_ids)
       OR cardinality(v_terms) IS DISTINCT FROM cardinality(p_ids) THEN
        RAISE EXCEPTION 'spor_append_group: % ids, % bodies, % term objects',
            cardinality(p_ids), cardinality(v_bodies), cardinality(v_terms)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
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
        -- an id stored already: the primary key says so; nothing of the call is kept
        INSERT INTO statements (store_id, statement_id, position, stored, voided, voids, refers_to,
                                authority_key, attachment_sha2s, terms)
        SELECT p_store, u.id, v_last + u.n, v_stored, false, NULL, NULL, u.authority,
               coalesce(string_to_array(u.sha2s, ','), '{}'), u.terms
        FROM unnest(p_ids, p_sha2s, v_terms, p_authority) WITH ORDINALITY AS u(id, sha2s, terms, authority, n);
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
    FROM unnest(p_ids, v_bodies, p_fill_ts) WITH ORDINALITY AS u(id, body, fill, n);

    INSERT INTO statement_terms (store_id, term, position, direct)
    SELECT p_store, t.key, v_last + u.n, t.value::boolean
    FROM unnest(v_terms) WITH ORDINALITY AS u(terms, n), jsonb_each(u.terms) AS t;

    IF cardinality(p_att_sha2) > 0 THEN
        INSERT INTO attachments (store_id, sha2, content_type, content)
        SELECT p_store, a.sha2, a.content_type, a.content
        FROM unnest(p_att_sha2, p_att_type, p_att_content) AS a(sha2, content_type, content)
        ON CONFLICT (store_id, sha2) DO NOTHING;
    END IF;

    IF p_defs <> '{}'::jsonb OR p_names <> '[]'::jsonb THEN
        PERFORM spor_merge_definitions(p_store, p_defs, p_names);
    END IF;

    UPDATE stores SET last_position = v_last + cardinality(p_ids), last_stored = v_stored WHERE id = p_store;
    RETURN v_stored;
END
$$;

-- generic plans, as 0016 says: the plans do not depend on the values
ALTER FUNCTION spor_merge_definitions(bigint, jsonb, jsonb) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION spor_append_group(bigint, uuid[], bytea, boolean[], text[], jsonb, text[], text[], text[], bytea[],
                                 jsonb, jsonb)
    SET plan_cache_mode = force_generic_plan;
