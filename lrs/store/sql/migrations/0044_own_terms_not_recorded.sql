-- 0044: a statement's filter terms recorded only where they are not its body's own.
--
-- statements.terms held each statement's effective filter terms as a jsonb object ({term:
-- direct}, ~550 bytes: nine IRIs and keys), for the rare paths that need them back: a
-- StatementRef inherits its target's, an erasure takes a statement's out of the runs. For a
-- statement of the common append they are exactly what lrs.ops.terms.statement_terms gives for
-- its body, so it now writes NULL there: PostgreSQL no longer parses ~550 bytes of jsonb a
-- statement nor stores them (~7-9 us of its CPU a statement in a store of 120,000 statements,
-- with 0043; bench/README). NULL means "the body's own terms"; a row holds them explicitly when
-- they differ: the general path (StatementRefs, voidings: inherited terms) writes them as
-- before, and an erasure that takes a person's terms off a statement that stays writes the
-- rest (lrs.person_erasure). A statement that refers to another (refers_to) never has NULL.
-- Readers: lrs.store.statements.recorded_terms.

ALTER TABLE statements ALTER COLUMN terms DROP NOT NULL;

DROP FUNCTION spor_append_group(bigint, uuid[], bytea, boolean[], text[], jsonb, text[], text[], text[], bytea[],
                                jsonb, jsonb, bigint, bigint, timestamptz, bigint, bigint,
                                text, text, text, text, text, text);

-- As 0042, without the terms objects.
CREATE FUNCTION spor_append_group(
    p_store bigint, p_ids uuid[], p_bodies bytea, p_fill_ts boolean[], p_sha2s text[],
    p_authority text[],
    p_att_sha2 text[], p_att_type text[], p_att_content bytea[],
    p_defs jsonb, p_names jsonb,
    p_ticket bigint, p_first bigint, p_stored timestamptz, p_ended bigint, p_defs_version bigint,
    p_run_terms text, p_run_separator text, p_run_first text, p_run_end text, p_run_offsets text,
    p_run_direct text,
    OUT o_stored timestamptz, OUT o_defs_before bigint, OUT o_defs_after bigint
) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    -- convert_from checks the UTF-8 (a bad byte is an error, as text would have been)
    v_bodies text[] := string_to_array(convert_from(p_bodies, 'UTF8'), E'\x1e');
    v_last   bigint := p_first - 1;
    v_text   text;
    v_constraint text;
    v_ended  bigint;
    v_drawn  bigint;
    v_run_terms   text[] := string_to_array(p_run_terms, p_run_separator);
    v_run_first   integer[] := translate(p_run_first, '[]', '{}')::integer[];
    v_run_end     integer[] := translate(p_run_end, '[]', '{}')::integer[];
    v_run_offsets integer[] := translate(p_run_offsets, '[]', '{}')::integer[];
    v_run_direct  boolean[] := string_to_array(p_run_direct, NULL)::boolean[];
BEGIN
    IF cardinality(v_bodies) IS DISTINCT FROM cardinality(p_ids)
       OR cardinality(p_sha2s) IS DISTINCT FROM cardinality(p_ids)
       OR cardinality(p_authority) IS DISTINCT FROM cardinality(p_ids) THEN
        RAISE EXCEPTION 'spor_append_group: % ids, % bodies, % attachment lists, % authority keys',
            cardinality(p_ids), cardinality(v_bodies), cardinality(p_sha2s), cardinality(p_authority)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF cardinality(v_run_first) IS DISTINCT FROM cardinality(v_run_terms)
       OR cardinality(v_run_end) IS DISTINCT FROM cardinality(v_run_terms)
       OR cardinality(v_run_offsets) IS DISTINCT FROM cardinality(v_run_direct)
       OR coalesce(v_run_end[cardinality(v_run_end)], 0) IS DISTINCT FROM cardinality(v_run_offsets) THEN
        RAISE EXCEPTION 'spor_append_group: % run terms, % firsts, % ends, % offsets, % flags',
            cardinality(v_run_terms), cardinality(v_run_first), cardinality(v_run_end),
            cardinality(v_run_offsets), cardinality(v_run_direct)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM set_config('spor.store_ids', p_store::text, true),
            set_config('spor.write_store', p_store::text, true);
    -- definitions left out at a version the store has passed already: fail before writing
    -- anything (the check that counts is in ticket order, below)
    IF p_defs_version IS NOT NULL
       AND (SELECT s.definitions_version FROM stores s WHERE s.id = p_store) IS DISTINCT FROM p_defs_version THEN
        PERFORM pg_advisory_unlock(spor_ticket_key(p_store, p_ticket));
        RAISE EXCEPTION 'spor_append_group: the activity definitions of store % changed since version %',
            p_store, p_defs_version USING ERRCODE = 'SPD01';
    END IF;
    -- A statement referring to a new one is committed before this ticket was drawn, or it is
    -- an append holding the lock that waits for this ticket and then sees these statements.
    IF EXISTS (SELECT 1 FROM statements WHERE store_id = p_store AND refers_to = ANY (p_ids)) THEN
        PERFORM pg_advisory_unlock(spor_ticket_key(p_store, p_ticket));
        RETURN;
    END IF;
    -- the same text as lrs.ops.timestamps.format_timestamp of a millisecond time
    v_text := to_char(p_stored AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');

    -- the body as stored: '{', the "stored" member (37 octets, v_text being 24) and, when the
    -- LRS fills it, the "timestamp" member (39), then what the server sent: the body without
    -- its first '{' (which it leaves out: substr of a UTF-8 text counted its characters twice,
    -- ~4% of the CPU of bench/ingest (b))
    BEGIN
        INSERT INTO events (store_id, position, kind, recorded_at, statement_id, payload, payload_bytes)
        SELECT p_store, v_last + u.n, 'statement', p_stored, u.id,
               ('{"stored":"' || v_text || '",'
                || CASE WHEN u.fill THEN '"timestamp":"' || v_text || '",' ELSE '' END
                || u.body)::json,
               octet_length(u.body) + octet_length(v_text) + 13
                + CASE WHEN u.fill THEN octet_length(v_text) + 15 ELSE 0 END
        FROM unnest(p_ids, v_bodies, p_fill_ts) WITH ORDINALITY AS u(id, body, fill, n);

        -- one run a term, built by the server (its positions are this call's: a fresh range,
        -- so no run overlaps them)
        INSERT INTO statement_term_runs (store_id, term, first_position, last_position, offsets, direct)
        SELECT p_store, r.term, v_last + r.first, v_last + r.first + v_run_offsets[r.e],
               v_run_offsets[coalesce(v_run_end[r.n - 1], 0) + 1:r.e],
               v_run_direct[coalesce(v_run_end[r.n - 1], 0) + 1:r.e]
        FROM unnest(v_run_terms, v_run_first, v_run_end) WITH ORDINALITY AS r(term, first, e, n);

        -- In ticket order from here. The statements rows (their primary key) come after every
        -- earlier ticket has written its own: an earlier append never waits for a later one's
        -- row of the same id, which would wait for it in turn. An id stored already (or by an
        -- earlier append in flight, which this then waits for): nothing of the call is kept.
        PERFORM spor_await_tickets(p_store, p_ended, p_ticket);
        -- terms NULL: the statement's own, as its body gives them (0044)
        INSERT INTO statements (store_id, statement_id, position, stored, voided, voids, refers_to,
                                authority_key, attachment_sha2s, terms)
        SELECT p_store, u.id, v_last + u.n, p_stored, false, NULL, NULL, u.authority,
               coalesce(string_to_array(u.sha2s, ','), '{}'), NULL
        FROM unnest(p_ids, p_sha2s, p_authority) WITH ORDINALITY AS u(id, sha2s, authority, n);
    EXCEPTION WHEN unique_violation THEN
        GET STACKED DIAGNOSTICS v_constraint = CONSTRAINT_NAME;
        IF v_constraint = 'statements_pkey' THEN
            PERFORM pg_advisory_unlock(spor_ticket_key(p_store, p_ticket));
            RETURN;
        END IF;
        RAISE;
    END;

    -- The later tickets already let go (their appends failed) end with this one: a later one
    -- in flight holds its lock until its own update, which cannot come before this commit.
    -- (Consistent-Through is "now" only when every ticket drawn has ended.)
    v_ended := p_ticket;
    SELECT t.ticket INTO v_drawn FROM store_tickets t WHERE t.id = p_store;
    WHILE v_ended < v_drawn AND pg_try_advisory_lock_shared(spor_ticket_key(p_store, v_ended + 1)) LOOP
        PERFORM pg_advisory_unlock_shared(spor_ticket_key(p_store, v_ended + 1));
        v_ended := v_ended + 1;
    END LOOP;
    -- The update waits for the commit of the ticket before.
    UPDATE stores SET last_position = v_last + cardinality(p_ids), last_stored = p_stored, ended_ticket = v_ended
    WHERE id = p_store;
    PERFORM pg_advisory_unlock(spor_ticket_key(p_store, p_ticket));

    -- rows that other appends may write too: in commit order, so no two wait for each other
    IF cardinality(p_att_sha2) > 0 THEN
        INSERT INTO attachments (store_id, sha2, content_type, content)
        SELECT p_store, a.sha2, a.content_type, a.content
        FROM unnest(p_att_sha2, p_att_type, p_att_content) AS a(sha2, content_type, content)
        ON CONFLICT (store_id, sha2) DO NOTHING;
    END IF;
    -- after the store's row: the appends before have committed their merges
    SELECT s.definitions_version INTO o_defs_before FROM stores s WHERE s.id = p_store;
    IF o_defs_before IS DISTINCT FROM p_defs_version AND p_defs_version IS NOT NULL THEN
        RAISE EXCEPTION 'spor_append_group: the activity definitions of store % changed since version % (now %)',
            p_store, p_defs_version, o_defs_before USING ERRCODE = 'SPD01';
    END IF;
    o_defs_after := o_defs_before;
    IF p_defs <> '{}'::jsonb OR p_names <> '[]'::jsonb THEN
        PERFORM spor_merge_definitions(p_store, p_defs, p_names);
        SELECT s.definitions_version INTO o_defs_after FROM stores s WHERE s.id = p_store;
    END IF;
    o_stored := p_stored;
END
$$;
ALTER FUNCTION spor_append_group(bigint, uuid[], bytea, boolean[], text[], text[], text[], text[], bytea[],
                                 jsonb, jsonb, bigint, bigint, timestamptz, bigint, bigint,
                                 text, text, text, text, text, text)
    SET plan_cache_mode = force_generic_plan;
