-- 0025: a query by filter term reads its statements from the event log alone.
--
-- spor_statements_at (0024) read two tables at a page's positions: `statements` (id, stored,
-- voided, attachment hashes, authority) and `events` (the body). In a store larger than memory
-- each position then costs two index descents and two heap pages, random reads from disk. With
-- 10,000,000 statements, queries by agent took 37.8 ms p95 (bench/README.md), most of it
-- waiting on those reads, the `statements` half of them for columns most queries do not need:
--   * the id and the stored time are in the event too: a statement's event carries its
--     statement_id, and its recorded_at is the statement's stored time (both append paths,
--     0022 and statements.sql append_statements, write the one value to both);
--   * voided is the one column only `statements` has, and it changes after the append. Voided
--     statements are few, so a partial index over them (with their stored time, which a page
--     by term needs to end at the since/until window) answers "which of these positions are
--     voided" from a few index pages that stay in memory;
--   * attachment hashes are needed only for attachments=true, and the authority only when a
--     credential reads its own statements (statements/read/mine): those queries keep
--     spor_statements_at.
--
-- spor_log_statements_at returns the rows in spor_statements_at's shape. The voided positions
-- come from the partial index, with their stored time, and are not kept. The others are read
-- from `events` by a bitmap heap scan (read-ahead, as in 0024) and kept when inside the
-- since/until window; the body is returned for those only. Voided rows carry no id, and no row
-- carries attachment hashes or an authority key (the callers that need them use
-- spor_statements_at). Nothing here reads `statements` outside the partial index, and a voided
-- statement's event is not read.
--
-- The index costs appends nothing measurable: its predicate is false for every row appended
-- but the few voided before they arrive. Building it reads `statements` once, inside the
-- migration (a few seconds per million statements; appends wait for it).

CREATE INDEX statements_voided ON statements (store_id, position) INCLUDE (stored) WHERE voided;

CREATE FUNCTION spor_log_statements_at(p_store bigint, p_positions bigint[], p_since timestamptz,
                                       p_until timestamptz)
RETURNS TABLE (id text, payload text, stored timestamptz, voided boolean, attachment_sha2s text[],
               "position" bigint, authority_key text, kept boolean)
LANGUAGE sql STABLE
SET enable_indexscan = off
SET enable_nestloop = off
AS $$
    WITH v AS MATERIALIZED (
        SELECT s.position, s.stored
        FROM statements s
        WHERE s.store_id = p_store AND s.voided AND s.position = ANY (p_positions)
    )
    SELECT NULL::text, NULL::text, v.stored, true, '{}'::text[], v.position, ''::text, false
    FROM v
    UNION ALL
    SELECT x.statement_id::text, CASE WHEN x.kept THEN x.payload::text END, x.recorded_at, false, '{}'::text[],
           x.position, ''::text, x.kept
    FROM (
        SELECT e.statement_id, e.payload, e.recorded_at, e.position,
               (p_since IS NULL OR e.recorded_at > p_since) AND (p_until IS NULL OR e.recorded_at <= p_until) AS kept
        FROM events e
        WHERE e.store_id = p_store
          AND e.position = ANY (ARRAY(SELECT unnest(p_positions) EXCEPT ALL SELECT v.position FROM v))
    ) x
$$;
