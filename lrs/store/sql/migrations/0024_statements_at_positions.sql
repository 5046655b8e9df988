-- 0024: a query by filter term reads its statements' pages with read-ahead.
--
-- A query by agent (or registration, or activity) found its statements one at a time: for each
-- position the terms index gave, an index lookup and a heap page of `statements`, then of
-- `events`. A person's statements lie across the whole history, so in a store larger than
-- memory each of those pages is a random read from disk, waited for one after the other.
--
-- The query now takes the page's positions from the terms index first (index-only since 0023,
-- `term_positions_desc`/`_asc`), then reads the rows at those positions here, by bitmap heap
-- scans: the pages are visited in file order and, with effective_io_concurrency above 1 (the
-- embedded cluster sets it on Linux; deploy/README.md says so for a database of your own), the
-- next ones are asked of the disk while the current one is read. Measured on the benchmark's
-- store of 1,000,000 statements with the OS cache dropped and the indexes in memory: agent
-- queries p95 18.8 ms as one nested-loop query, 8.0 ms this way.
--
-- Plain index scans are switched off inside the function only, so the planner cannot pick the
-- one-page-at-a-time plan for a few hundred positions; nothing else is affected. It runs as the
-- caller: row-level security applies as to any read.

CREATE FUNCTION spor_statements_at(p_store bigint, p_positions bigint[], p_since timestamptz,
                                   p_until timestamptz, p_authority text)
RETURNS TABLE (id text, payload text, stored timestamptz, voided boolean, attachment_sha2s text[],
               "position" bigint, authority_key text, kept boolean)
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
        SELECT e.position, e.payload
        FROM events e
        WHERE e.store_id = p_store AND e.position = ANY (ARRAY(SELECT s.position FROM s WHERE s.kept))
    )
    SELECT s.statement_id::text, e.payload::text, s.stored, s.voided, s.attachment_sha2s, s.position,
           s.authority_key, s.kept
    FROM s LEFT JOIN e ON e.position = s.position
$$;
