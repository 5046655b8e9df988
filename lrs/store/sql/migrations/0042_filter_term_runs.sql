-- 0042: filter terms kept as runs of positions (posting lists).
--
-- statement_terms held one row a filter term and statement: nine a statement of the usual
-- kind, each with its B-tree entry. Under eight appends at once those rows were over half of
-- PostgreSQL's work for a statement, ~11 us a row whether the term is shared (a verb, the
-- authority) or the statement's own (bench/README, "Under concurrency the filter-term rows are
-- what PostgreSQL spends on"). A run holds one term's positions within an interval of the log
-- (as offsets from its start, `first_position`): an append writes one run a term it names, so
-- a call of ~200 statements writes ~870 rows instead of ~1,900.
--
-- The runs of one term never overlap: [first_position, last_position] intervals are disjoint,
-- and every position of a run lies in its interval, ascending, each once (`direct` beside it).
-- An append's positions are a fresh range, so its runs overlap nothing. A term added at an older
-- position (a StatementRef stored before its target inherits the target's terms, an erasure
-- rewriting a referrer's) goes into the run whose interval holds the position, or into a run of
-- one (spor_terms_add). An erasure takes positions out (spor_terms_remove); a run left empty
-- goes. So the run that may hold position p of a term is the one with the greatest
-- first_position at or below p, one probe of the primary key.

CREATE TABLE statement_term_runs (
    store_id       bigint NOT NULL,
    term           text NOT NULL,
    first_position bigint NOT NULL,
    last_position  bigint NOT NULL,
    offsets        integer[] NOT NULL,
    direct         boolean[] NOT NULL,
    PRIMARY KEY (store_id, term, first_position)
)
-- a run of a call's ~200 statements is ~2 KB, where PostgreSQL would begin compressing it
WITH (toast_tuple_target = 8160);
SELECT spor_protect('statement_term_runs');
GRANT SELECT, INSERT, UPDATE, DELETE ON statement_term_runs TO spor_app;

-- The terms as they were, in runs of at most 256 positions of one term.
INSERT INTO statement_term_runs (store_id, term, first_position, last_position, offsets, direct)
SELECT store_id, term, first, max(position),
       array_agg((position - first)::integer ORDER BY position), array_agg(direct ORDER BY position)
FROM (SELECT t.*, min(t.position) OVER (PARTITION BY t.store_id, t.term, t.position >> 8) AS first
      FROM statement_terms t) x
GROUP BY store_id, term, first;

DROP TABLE statement_terms;

-- The append of servers two releases back (0016, kept by 0022 for servers of the version
-- before it) wrote the table just dropped; no server calls it since 0022.
DROP FUNCTION spor_append_statements(bigint, uuid[], text[], boolean[], text[], jsonb[], text[], text[], text[],
                                     bytea[], text[], jsonb[], text[], text[]);

-- The entries, one a term and position, for what reads them whole (a person's export,
-- tests): with the caller's rights, so row-level security holds as on the table.
CREATE VIEW statement_terms WITH (security_invoker = true) AS
SELECT r.store_id, r.term, r.first_position + u.off AS position, u.direct
FROM statement_term_runs r, unnest(r.offsets, r.direct) AS u(off, direct);
REVOKE ALL ON statement_terms FROM spor_app;
GRANT SELECT ON statement_terms TO spor_app;

-- Add entries at positions that may lie in existing runs' intervals (a term repeated keeps
-- `direct` if any says so). Rare paths: the general append's inherited terms, an erasure.
CREATE FUNCTION spor_terms_add(p_store bigint, p_terms text[], p_positions bigint[], p_direct boolean[])
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    e record;
    k record;
    i integer;
BEGIN
    FOR e IN
        SELECT x.term, x.position, bool_or(x.direct) AS direct
        FROM unnest(p_terms, p_positions, p_direct) AS x(term, position, direct)
        GROUP BY x.term, x.position
        ORDER BY x.term, x.position
    LOOP
        SELECT r.first_position, r.last_position, r.offsets, r.direct INTO k
        FROM statement_term_runs r
        WHERE r.store_id = p_store AND r.term = e.term AND r.first_position <= e.position
        ORDER BY r.first_position DESC
        LIMIT 1
        FOR UPDATE;
        IF NOT FOUND OR k.last_position < e.position THEN
            INSERT INTO statement_term_runs (store_id, term, first_position, last_position, offsets, direct)
            VALUES (p_store, e.term, e.position, e.position, ARRAY[0], ARRAY[e.direct]);
            CONTINUE;
        END IF;
        i := array_position(k.offsets, (e.position - k.first_position)::integer);
        IF i IS NULL THEN
            UPDATE statement_term_runs r
            SET (offsets, direct) = (
                SELECT array_agg(u.o ORDER BY u.o), array_agg(u.d ORDER BY u.o)
                FROM unnest(k.offsets || (e.position - k.first_position)::integer, k.direct || e.direct) AS u(o, d))
            WHERE r.store_id = p_store AND r.term = e.term AND r.first_position = k.first_position;
        ELSIF e.direct AND NOT k.direct[i] THEN
            UPDATE statement_term_runs r SET direct[i] = true
            WHERE r.store_id = p_store AND r.term = e.term AND r.first_position = k.first_position;
        END IF;
    END LOOP;
END
$$;

-- Take entries out (pairs of term and position); the entries that were there. A run left
-- with none goes (its interval stays as it was while it has some: the runs stay disjoint).
CREATE FUNCTION spor_terms_remove(p_store bigint, p_terms text[], p_positions bigint[])
RETURNS TABLE (term text, at_position bigint) LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    g record;
    k record;
    v_offsets integer[];
    v_direct boolean[];
BEGIN
    FOR g IN
        SELECT x.term AS t, r.first_position AS f, array_agg(DISTINCT (x.position - r.first_position)) AS gone
        FROM unnest(p_terms, p_positions) AS x(term, position)
        CROSS JOIN LATERAL (
            SELECT r.first_position FROM statement_term_runs r
            WHERE r.store_id = p_store AND r.term = x.term AND r.first_position <= x.position
            ORDER BY r.first_position DESC LIMIT 1) r
        GROUP BY x.term, r.first_position
        ORDER BY x.term, r.first_position
    LOOP
        SELECT r.offsets, r.direct INTO k FROM statement_term_runs r
        WHERE r.store_id = p_store AND r.term = g.t AND r.first_position = g.f
        FOR UPDATE;
        SELECT array_agg(u.o ORDER BY u.o), array_agg(u.d ORDER BY u.o) INTO v_offsets, v_direct
        FROM unnest(k.offsets, k.direct) AS u(o, d)
        WHERE u.o <> ALL (g.gone);
        IF v_offsets IS NULL THEN
            DELETE FROM statement_term_runs r WHERE r.store_id = p_store AND r.term = g.t AND r.first_position = g.f;
        ELSIF cardinality(v_offsets) < cardinality(k.offsets) THEN
            UPDATE statement_term_runs r SET offsets = v_offsets, direct = v_direct
            WHERE r.store_id = p_store AND r.term = g.t AND r.first_position = g.f;
        END IF;
        RETURN QUERY SELECT g.t, g.f + u.o FROM unnest(g.gone) AS u(o) WHERE u.o = ANY (k.offsets);
    END LOOP;
END
$$;

-- The common append (0040), its filter terms written as runs the server built (p_run_*, as
-- text: the terms joined by p_run_separator; per run the ordinal of its first statement in the
-- call and where its entries end, as JSON arrays; the entries' offsets, a JSON array, and their
-- `direct` flags, a string of t and f; see lrs.store.statements.term_run_columns).
DROP FUNCTION spor_append_group(bigint, uuid[], bytea, boolean[], text[], jsonb, text[], text[], text[], bytea[],
                                jsonb, jsonb, bigint, bigint, timestamptz, bigint, bigint);

CREATE FUNCTION spor_append_group(
    p_store bigint, p_ids uuid[], p_bodies bytea, p_fill_ts boolean[], p_sha2s text[],
    p_terms jsonb, p_authority text[],
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
    v_terms  jsonb[] := ARRAY(SELECT e FROM jsonb_array_elements(p_terms) WITH ORDINALITY AS x(e, n) ORDER BY n);
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
       OR cardinality(v_terms) IS DISTINCT FROM cardinality(p_ids) THEN
        RAISE EXCEPTION 'spor_append_group: % ids, % bodies, % term objects',
            cardinality(p_ids), cardinality(v_bodies), cardinality(v_terms)
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
        INSERT INTO statements (store_id, statement_id, position, stored, voided, voids, refers_to,
                                authority_key, attachment_sha2s, terms)
        SELECT p_store, u.id, v_last + u.n, p_stored, false, NULL, NULL, u.authority,
               coalesce(string_to_array(u.sha2s, ','), '{}'), u.terms
        FROM unnest(p_ids, p_sha2s, v_terms, p_authority) WITH ORDINALITY AS u(id, sha2s, terms, authority, n);
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
ALTER FUNCTION spor_append_group(bigint, uuid[], bytea, boolean[], text[], jsonb, text[], text[], text[], bytea[],
                                 jsonb, jsonb, bigint, bigint, timestamptz, bigint, bigint,
                                 text, text, text, text, text, text)
    SET plan_cache_mode = force_generic_plan;
