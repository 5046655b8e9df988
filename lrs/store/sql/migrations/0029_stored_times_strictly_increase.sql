-- 0029: each append of a store gets a stored time after the last one's, never the same.
--
-- An append's stored time was the greater of the store's last one and now, in milliseconds: two
-- appends in one millisecond shared it. Consistent-Through then could not be both true and
-- useful. It is the time up to which every statement is in a query's answer; a client that
-- reads incrementally asks since the last one, and since is exclusive. A statement stored in
-- the very millisecond of a Consistent-Through, by an append still in flight, was in neither
-- answer: lost to that client for good. (tests/integration/test_event_log.py, comparing each
-- page with every statement stored at or before its Consistent-Through, failed in three of
-- three runs; a code review pointed at the tie after 0028.)
--
-- Now an append's stored time is at least a millisecond after the last one's (the greater of
-- that and now): stored times strictly increase from append to append (the statements of one
-- append share theirs). So Consistent-Through is:
--   * after an append, its own stored time: every append still to come gets a later one;
--   * on a read, while an append holds the store's lock, the last committed stored time: the
--     append in flight gets a later one;
--   * on a read with the lock free, the greater of the last stored time and the millisecond
--     before now: every append to come gets a time after both (spor_store_horizon below).
-- Under more than a thousand appends a second to one store, stored times would run ahead of
-- the clock by the excess; group commit keeps appends far fewer than statements (bench/ingest:
-- tens to a few hundred a second).
--
-- spor_append_group is 0022's with that one change (the general path's append_check and the
-- document path's append_position_and_stored, in lrs/store/sql/statements.sql, have it too);
-- spor_store_horizon is 0028's with the lock-free value above.

-- Returns the stored time of the append, or NULL when the general path must take it (an id is
-- stored already, or a stored statement refers to one of the new ids), having written nothing.
CREATE OR REPLACE FUNCTION spor_append_group(
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
           greatest(coalesce(last_stored + interval '1 millisecond', '-infinity'),
                    date_trunc('milliseconds', clock_timestamp()))
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

-- CREATE OR REPLACE drops the settings of the function it replaces: 0022's, again
ALTER FUNCTION spor_append_group(bigint, uuid[], bytea, boolean[], text[], jsonb, text[], text[], text[], bytea[],
                                 jsonb, jsonb)
    SET plan_cache_mode = force_generic_plan;

CREATE OR REPLACE FUNCTION spor_store_horizon(p_store bigint)
RETURNS TABLE (last_position bigint, consistent_through timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_now timestamptz;
BEGIN
    IF pg_try_advisory_xact_lock_shared(1397772114, p_store::int) THEN
        v_now := date_trunc('milliseconds', clock_timestamp()) - interval '1 millisecond';
    END IF;
    RETURN QUERY
        SELECT s.last_position,
               CASE WHEN v_now IS NULL THEN coalesce(s.last_stored, s.created_at)
                    ELSE greatest(s.last_stored, v_now) END
        FROM stores s WHERE s.id = p_store;
END
$$;
