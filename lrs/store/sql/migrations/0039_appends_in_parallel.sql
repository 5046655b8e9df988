-- 0039: batches of statements are written in parallel, and commit in position order.
--
-- Until now every append held its store's exclusive advisory lock from its first row to its
-- commit, so a reader that has seen position N never later finds a committed event below N.
-- That made one store's appends one at a time: bench/ingest.py measured the lock held ~116 us
-- a statement, a ceiling of ~8,600 statements/s on any number of cores.
--
-- The common append (spor_append_group: no StatementRef, no id stored before) now takes
-- the lock only for a moment, in a transaction of its own (spor_reserve_ticket): it reserves
-- its positions and stored time and draws a ticket, the next number of the store. Holding the
-- ticket is holding a session advisory lock keyed by it, taken in that same short transaction,
-- so a later ticket never sees an earlier one not yet taken. Then it writes its events and
-- filter terms alongside the appends of other tickets. Then it waits for every earlier ticket
-- of the store to end, writes its statements rows (their primary key settles a re-sent id in
-- ticket order: no two appends wait for each other's rows), updates the store's row (whose row
-- lock makes the next ticket's update wait for this commit), lets its ticket go, merges
-- definitions and commits.
-- Commits therefore happen in ticket order, which is position order: the guarantee readers
-- had is kept, and readers are unchanged.
--
-- Every other append (documents, reference data, the general statement path, an erasure)
-- still holds the lock to its commit, and first waits for the tickets in flight
-- (spor_lock_store): it sees every earlier append, and none begins before it commits.
--
-- stores.ended_ticket: every ticket up to it has ended (committed, or rolled back).
-- store_tickets: the reservation counters, on a row of their own so that a reservation never
-- waits for the commit of an append in flight (which holds the row lock of stores).

ALTER TABLE stores ADD COLUMN ended_ticket bigint NOT NULL DEFAULT 0;

CREATE TABLE store_tickets (
    id            bigint PRIMARY KEY REFERENCES stores (id) ON DELETE CASCADE,
    ticket        bigint NOT NULL,       -- the last ticket drawn
    last_position bigint NOT NULL,       -- the last position reserved
    last_stored   timestamptz NOT NULL   -- the stored time of the last reservation
);

-- The key of a ticket's session advisory lock (the one-bigint form; the first-start and migration
-- locks of lrs/cli.py and lrs/store/migrate.py use it too, and would meet a ticket only in store
-- 0x53706F after ~1.9 billion appends).
CREATE FUNCTION spor_ticket_key(p_store bigint, p_ticket bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (p_store << 32) | (p_ticket & 4294967295)
$$;

-- Wait until every ticket of the store after p_ended and before p_until has ended.
CREATE FUNCTION spor_await_tickets(p_store bigint, p_ended bigint, p_until bigint) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    j bigint;
BEGIN
    FOR j IN p_ended + 1 .. p_until - 1 LOOP
        PERFORM pg_advisory_lock_shared(spor_ticket_key(p_store, j));
        PERFORM pg_advisory_unlock_shared(spor_ticket_key(p_store, j));
    END LOOP;
END
$$;

-- A short transaction of its own: positions, stored time and ticket of a common append. The
-- caller holds the ticket (a session lock) until spor_append_group lets it go, or lets it go
-- itself when that call fails. Synchronous commit is off: a reservation lost in a crash was
-- never used by a commit (a commit flushes the log up to itself).
CREATE FUNCTION spor_reserve_ticket(p_store bigint, p_count integer)
RETURNS TABLE (ticket bigint, first_position bigint, stored timestamptz, ended_ticket bigint)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    s record;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true),
            pg_advisory_xact_lock(1397772114, p_store::int);
    -- a statement after the lock: its snapshot holds every append that let the lock go
    SELECT st.last_position, st.last_stored, st.ended_ticket,
           t.ticket AS t_ticket, t.last_position AS t_last, t.last_stored AS t_stored
      INTO s FROM stores st LEFT JOIN store_tickets t ON t.id = st.id WHERE st.id = p_store;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'store % does not exist', p_store USING ERRCODE = 'foreign_key_violation';
    END IF;
    ticket := greatest(s.t_ticket, s.ended_ticket) + 1;
    first_position := greatest(s.t_last, s.last_position) + 1;
    stored := greatest(coalesce(greatest(s.t_stored, s.last_stored) + interval '1 millisecond', '-infinity'),
                       date_trunc('milliseconds', clock_timestamp()));
    ended_ticket := s.ended_ticket;
    INSERT INTO store_tickets AS t (id, ticket, last_position, last_stored)
    VALUES (p_store, ticket, first_position + p_count - 1, stored)
    ON CONFLICT (id) DO UPDATE
        SET ticket = EXCLUDED.ticket, last_position = EXCLUDED.last_position, last_stored = EXCLUDED.last_stored;
    -- Never held: a session that kept a ticket after its reservation rolled back (cancelled
    -- between this line and its commit) would otherwise stop the store without a word.
    IF NOT pg_try_advisory_lock(spor_ticket_key(p_store, ticket)) THEN
        RAISE EXCEPTION 'ticket % of store % is still held by a session whose reservation failed', ticket, p_store
            USING ERRCODE = 'lock_not_available';
    END IF;
    RETURN NEXT;
END
$$;

-- The store's append lock for an append that holds it to its commit: take it, then wait for
-- the tickets in flight, and for the last of them to commit (the row lock of stores), so the
-- caller's next statement sees every earlier append.
CREATE FUNCTION spor_lock_store(p_store bigint) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_ended  bigint;
    v_ticket bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(1397772114, p_store::int);
    SELECT st.ended_ticket, t.ticket INTO v_ended, v_ticket
      FROM stores st LEFT JOIN store_tickets t ON t.id = st.id WHERE st.id = p_store;
    IF v_ticket IS NULL OR v_ticket <= v_ended THEN
        RETURN;
    END IF;
    PERFORM spor_await_tickets(p_store, v_ended, v_ticket + 1);
    UPDATE stores SET ended_ticket = greatest(ended_ticket, v_ticket) WHERE id = p_store;
END
$$;

-- Consistent-Through (0028): a millisecond before now, when no append holds the lock and no
-- ticket is in flight; else the stored time of the last commit. A reservation after the clock
-- read gets a stored time not before it (it may be that very millisecond, hence the one before);
-- one before it holds the lock until its row is committed, and then its ticket is in the
-- snapshot read here. Before 0039 the lock was rarely free under load; now it is free but for
-- reservations, and "now" is answered whenever no ticket is in flight.
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
               CASE WHEN v_now IS NOT NULL AND s.ended_ticket >= coalesce(t.ticket, 0)
                    THEN greatest(v_now, s.last_stored, s.created_at)
                    ELSE coalesce(s.last_stored, s.created_at) END
        FROM stores s LEFT JOIN store_tickets t ON t.id = s.id WHERE s.id = p_store;
END
$$;

DROP FUNCTION spor_append_group(bigint, uuid[], bytea, boolean[], text[], jsonb, text[], text[], text[], bytea[],
                                jsonb, jsonb);

-- The common append (0007, 0016, 0022, 0029, 0031) with a ticket of spor_reserve_ticket.
-- NULL, with nothing written and the ticket let go, when the general path must take it.
CREATE FUNCTION spor_append_group(
    p_store bigint, p_ids uuid[], p_bodies bytea, p_fill_ts boolean[], p_sha2s text[],
    p_terms jsonb, p_authority text[],
    p_att_sha2 text[], p_att_type text[], p_att_content bytea[],
    p_defs jsonb, p_names jsonb,
    p_ticket bigint, p_first bigint, p_stored timestamptz, p_ended bigint
) RETURNS timestamptz LANGUAGE plpgsql VOLATILE AS $$
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
    -- A statement referring to a new one is committed before this ticket was drawn, or it is
    -- an append holding the lock that waits for this ticket and then sees these statements.
    IF EXISTS (SELECT 1 FROM statements WHERE store_id = p_store AND refers_to = ANY (p_ids)) THEN
        PERFORM pg_advisory_unlock(spor_ticket_key(p_store, p_ticket));
        RETURN NULL;
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
            RETURN NULL;
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
    IF p_defs <> '{}'::jsonb OR p_names <> '[]'::jsonb THEN
        PERFORM spor_merge_definitions(p_store, p_defs, p_names);
    END IF;
    RETURN p_stored;
END
$$;
ALTER FUNCTION spor_append_group(bigint, uuid[], bytea, boolean[], text[], jsonb, text[], text[], text[], bytea[],
                                 jsonb, jsonb, bigint, bigint, timestamptz, bigint)
    SET plan_cache_mode = force_generic_plan;
