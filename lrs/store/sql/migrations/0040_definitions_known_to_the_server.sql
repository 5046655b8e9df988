-- 0040: a server need not send the Activity definitions the store holds already.
--
-- Every common append sent the folded definitions of its statements' Activities, and the
-- store merged each in ticket order (spor_merge_definitions): on bench/ingest (b) ~4.6 ms of
-- a ~190-statement call (~24 us a statement), nearly always to find nothing changed, as
-- content sends the same definition with every statement.
--
-- Now a server process remembers, per store, what it sent for each Activity, and sends it
-- again only when it differs; the rest it skips. Skipping is right only when nothing changed
-- the store's definitions since that process's last merge: merging a definition twice
-- changes nothing (lrs.ops.activities.merge_definition), but a later, different definition
-- of another statement must be overridden again by a re-sent one ("later wins").
--
-- stores.definitions_version moves on with every change: triggers on activities give it a new
-- random value for every statement that updates, deletes or truncates stored definitions
-- (whichever code runs it). Random, not a count: a database gone back in history (a failover
-- that lost commits, a restore) never shows a process a version it knew with other content
-- (a review). A new Activity changes nothing a process knows: it knows only definitions it
-- merged, which are stored (until a delete, which counts), and bench/ingest (b) adds new
-- Activities all along: counting them made every other process's next append fail (114 of
-- ~800 calls). An append that left something out names the version its process knows, and
-- fails (SQLSTATE SPD01, nothing kept) when the store's differs: first before it writes
-- anything, when it differs already, and then in ticket order, when the appends before it
-- have committed. The process forgets what it knew of the store and sends everything again.
-- Every append returns the version before and after its merge, which the process learns from.
--
-- The writers of activities run alone in their store (an append merges in ticket order under
-- the store's row; the general path and an erasure hold the store's append lock). An UPDATE of
-- activities made by hand, outside them, may deadlock with an append (PostgreSQL ends one).

ALTER TABLE stores ADD COLUMN definitions_version bigint NOT NULL DEFAULT 0;

-- a new version: 62 random bits (0 is a store's first, before any change)
CREATE FUNCTION spor_new_definitions_version() RETURNS bigint LANGUAGE sql VOLATILE AS $$
    SELECT ('x' || substr(md5(random()::text || clock_timestamp()::text), 1, 16))::bit(64)::bigint
           & 4611686018427387903
$$;

CREATE FUNCTION spor_definitions_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE stores SET definitions_version = spor_new_definitions_version()
    WHERE id IN (SELECT DISTINCT c.store_id FROM changed c);
    RETURN NULL;
END
$$;

CREATE FUNCTION spor_definitions_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE stores SET definitions_version = spor_new_definitions_version();
    RETURN NULL;
END
$$;

CREATE TRIGGER activities_updated AFTER UPDATE ON activities REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION spor_definitions_changed();
CREATE TRIGGER activities_deleted AFTER DELETE ON activities REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION spor_definitions_changed();
CREATE TRIGGER activities_truncated AFTER TRUNCATE ON activities
    FOR EACH STATEMENT EXECUTE FUNCTION spor_definitions_truncated();

DROP FUNCTION spor_append_group(bigint, uuid[], bytea, boolean[], text[], jsonb, text[], text[], text[], bytea[],
                                jsonb, jsonb, bigint, bigint, timestamptz, bigint);

-- The common append (0007, 0016, 0022, 0029, 0031, 0039). p_defs_version: the store's
-- definitions version the caller's skipped definitions were merged at (NULL: it skipped
-- none). Returns the stored time (NULL, with nothing written and the ticket let go, when the
-- general path must take it) and the definitions version before and after its merge.
CREATE FUNCTION spor_append_group(
    p_store bigint, p_ids uuid[], p_bodies bytea, p_fill_ts boolean[], p_sha2s text[],
    p_terms jsonb, p_authority text[],
    p_att_sha2 text[], p_att_type text[], p_att_content bytea[],
    p_defs jsonb, p_names jsonb,
    p_ticket bigint, p_first bigint, p_stored timestamptz, p_ended bigint, p_defs_version bigint,
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
BEGIN
    IF cardinality(v_bodies) IS DISTINCT FROM cardinality(p_ids)
       OR cardinality(v_terms) IS DISTINCT FROM cardinality(p_ids) THEN
        RAISE EXCEPTION 'spor_append_group: % ids, % bodies, % term objects',
            cardinality(p_ids), cardinality(v_bodies), cardinality(v_terms)
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

    -- the body as stored: its first '{' and then what it sent, after the "stored" member (37
    -- octets, v_text being 24) and, when the LRS fills it, the "timestamp" member (39)
    BEGIN
        INSERT INTO events (store_id, position, kind, recorded_at, statement_id, payload, payload_bytes)
        SELECT p_store, v_last + u.n, 'statement', p_stored, u.id,
               ('{"stored":"' || v_text || '",'
                || CASE WHEN u.fill THEN '"timestamp":"' || v_text || '",' ELSE '' END
                || substr(u.body, 2))::json,
               octet_length(u.body) - 1 + octet_length(v_text) + 13
                + CASE WHEN u.fill THEN octet_length(v_text) + 15 ELSE 0 END
        FROM unnest(p_ids, v_bodies, p_fill_ts) WITH ORDINALITY AS u(id, body, fill, n);

        INSERT INTO statement_terms (store_id, term, position, direct)
        SELECT p_store, t.key, v_last + u.n, t.value::boolean
        FROM unnest(v_terms) WITH ORDINALITY AS u(terms, n), jsonb_each(u.terms) AS t;

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
                                 jsonb, jsonb, bigint, bigint, timestamptz, bigint, bigint)
    SET plan_cache_mode = force_generic_plan;
