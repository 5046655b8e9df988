-- 0041: the rule for an append's stored time, written once.
--
-- An append's stored time is a millisecond after the store's last one at least, and otherwise
-- now, to the millisecond (migration 0029: no two appends of a store share a stored time, so a
-- statement stored in the millisecond of a Consistent-Through is never missed). The rule was written out three times: in
-- spor_reserve_ticket (the common append, 0039) and in the queries append_position_and_stored
-- (the log's own events, an erasure) and append_check (the general path). They now call this.

CREATE FUNCTION spor_stored_after(p_last timestamptz) RETURNS timestamptz LANGUAGE sql VOLATILE AS $$
    SELECT greatest(coalesce(p_last + interval '1 millisecond', '-infinity'),
                    date_trunc('milliseconds', clock_timestamp()))
$$;

-- The common append's reservation (0039), its stored time by the rule above.
CREATE OR REPLACE FUNCTION spor_reserve_ticket(p_store bigint, p_count integer)
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
    stored := spor_stored_after(greatest(s.t_stored, s.last_stored));
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
