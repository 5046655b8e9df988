-- 0031: a statement's size is stored with it, and a query page stops at a byte budget.
--
-- A query page held `limit` statements (at most SPOR_QUERY_LIMIT_MAX, 100) whatever their size.
-- A statement may be as large as a request body (SPOR_MAX_BODY_BYTES, 64 MiB), so one GET could
-- make the server read and build a response of several gigabytes: a page of 100 statements of
-- 60 MB each. Communication 2.1.3 lets a page hold fewer statements than asked for, its `more`
-- going on from there; a page should stop once its bodies pass a budget (lrs.settings
-- query_statement_bytes_max). That needs each statement's size before its body is read, and the
-- database cannot give it cheaply: `payload` is json, whose cast to text reads (and
-- decompresses) the whole value (five 60 MB bodies: 0.6 s), and pg_column_size is the stored,
-- compressed size (a 60 MB body of one repeated letter is 0.7 MB).
--
-- So:
--   * events.payload_bytes: the octets of a statement event's payload, written by both append
--     paths (spor_append_group here, append_statements in lrs/store/sql/statements.sql). It is
--     NULL for events written before this migration and for other kinds of event; readers then
--     measure the payload itself (coalesce). Adding a nullable column rewrites nothing.
--   * spor_append_group is 0029's with that column written (from the lengths of the parts it
--     joins: no second pass over the body).
--   * spor_statements_at (0024) and spor_log_statements_at (0025) take the page's remaining
--     budget (NULL: none) and whether the page has rows already (from earlier rounds), and
--     return a kept row's body only while it and the kept rows' bodies before it, in the order
--     of the positions given, are within it; the first kept row of a page always has its body.
--     A kept row without a body is where the page ends (lrs/store/statements.py). They also
--     return each kept row's size, so a page read in rounds knows what is left.
--     query_all_desc/asc (statements.sql) do the same in one statement. One rule decides for all
--     (spor_page_takes).

ALTER TABLE events ADD COLUMN payload_bytes integer;

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

    -- the body as stored: its first '{' and then what it sent, after the "stored" member (37
    -- octets, v_text being 24) and, when the LRS fills it, the "timestamp" member (39)
    INSERT INTO events (store_id, position, kind, recorded_at, statement_id, payload, payload_bytes)
    SELECT p_store, v_last + u.n, 'statement', v_stored, u.id,
           ('{"stored":"' || v_text || '",'
            || CASE WHEN u.fill THEN '"timestamp":"' || v_text || '",' ELSE '' END
            || substr(u.body, 2))::json,
           octet_length(u.body) - 1 + octet_length(v_text) + 13
            + CASE WHEN u.fill THEN octet_length(v_text) + 15 ELSE 0 END
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

-- The budget's rule, one for every page reader: a kept statement's body comes when the page
-- has no budget, when it is the page's first (nothing before it, and no earlier round), or
-- when it and the bodies before it are within the budget.
CREATE FUNCTION spor_page_takes(p_before bigint, p_bytes integer, p_budget bigint, p_page_started boolean)
RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT p_budget IS NULL OR (p_before = 0 AND NOT p_page_started) OR p_before + p_bytes <= p_budget
$$;

-- (0024's and 0025's functions stay, for servers of the previous release during a rolling
-- upgrade: these take more arguments, so both are kept side by side.)

CREATE FUNCTION spor_statements_at(p_store bigint, p_positions bigint[], p_since timestamptz,
                                   p_until timestamptz, p_authority text, p_budget bigint, p_page_started boolean)
RETURNS TABLE (id text, payload text, stored timestamptz, voided boolean, attachment_sha2s text[],
               "position" bigint, authority_key text, kept boolean, bytes integer)
LANGUAGE sql STABLE
SET enable_indexscan = off
SET enable_nestloop = off
AS $$
    -- kept: what the query's statement filters let through; only those rows' events (the
    -- statement bodies, the larger heap) are read
    WITH s AS MATERIALIZED (
        SELECT s.statement_id, s.stored, s.voided, s.attachment_sha2s, s.position, s.authority_key,
               NOT s.voided AND (p_since IS NULL OR s.stored > p_since)
                   AND (p_until IS NULL OR s.stored <= p_until)
                   AND (p_authority IS NULL OR s.authority_key = p_authority) AS kept
        FROM statements s
        WHERE s.store_id = p_store AND s.position = ANY (p_positions)
    ), e AS (
        SELECT e.position, e.payload, coalesce(e.payload_bytes, octet_length(e.payload::text)) AS bytes
        FROM events e
        WHERE e.store_id = p_store AND e.position = ANY (ARRAY(SELECT s.position FROM s WHERE s.kept))
    ), o AS (
        SELECT s.*, e.payload, e.bytes,
               coalesce(sum(e.bytes) OVER (ORDER BY k.n ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)
                   AS before
        FROM s
        JOIN unnest(p_positions) WITH ORDINALITY AS k(position, n) ON k.position = s.position
        LEFT JOIN e ON e.position = s.position
    )
    SELECT o.statement_id::text, CASE WHEN spor_page_takes(o.before, o.bytes, p_budget, p_page_started)
                THEN o.payload::text END,
           o.stored, o.voided, o.attachment_sha2s, o.position, o.authority_key, o.kept, o.bytes
    FROM o
$$;

CREATE FUNCTION spor_log_statements_at(p_store bigint, p_positions bigint[], p_since timestamptz,
                                       p_until timestamptz, p_budget bigint, p_page_started boolean)
RETURNS TABLE (id text, payload text, stored timestamptz, voided boolean, attachment_sha2s text[],
               "position" bigint, authority_key text, kept boolean, bytes integer)
LANGUAGE sql STABLE
SET enable_indexscan = off
SET enable_nestloop = off
AS $$
    WITH v AS MATERIALIZED (
        SELECT s.position, s.stored
        FROM statements s
        WHERE s.store_id = p_store AND s.voided AND s.position = ANY (p_positions)
    ), x AS (
        SELECT e.statement_id, e.payload, e.recorded_at, e.position, e.payload_bytes,
               (p_since IS NULL OR e.recorded_at > p_since) AND (p_until IS NULL OR e.recorded_at <= p_until) AS kept
        FROM events e
        WHERE e.store_id = p_store
          AND e.position = ANY (ARRAY(SELECT unnest(p_positions) EXCEPT ALL SELECT v.position FROM v))
    ), y AS (
        SELECT x.*, CASE WHEN x.kept THEN coalesce(x.payload_bytes, octet_length(x.payload::text)) END AS bytes
        FROM x
    ), o AS (
        SELECT y.*,
               coalesce(sum(y.bytes) OVER (ORDER BY k.n ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)
                   AS before
        FROM y JOIN unnest(p_positions) WITH ORDINALITY AS k(position, n) ON k.position = y.position
    )
    SELECT NULL::text, NULL::text, v.stored, true, '{}'::text[], v.position, ''::text, false, NULL::integer
    FROM v
    UNION ALL
    SELECT o.statement_id::text,
           CASE WHEN o.kept AND spor_page_takes(o.before, o.bytes, p_budget, p_page_started)
                THEN o.payload::text END,
           o.recorded_at, false, '{}'::text[], o.position, ''::text, o.kept, o.bytes
    FROM o
$$;
