-- 0014: statement facts extracted once for several read models.
--
-- Each read model folds a window of the log by extracting the facts of its statements
-- (projections.statement_facts, 0008: parse the payload, actor key, courses, time, duration),
-- so rebuilding all three read models parsed every statement three times. A rebuild of several
-- read models now extracts them once into statement_facts_cache, in parallel, and every fold
-- reads them through window_facts, which takes the cached rows for the positions the cache
-- covers and extracts the rest. Facts depend only on the event, which never changes, so a
-- cached row is never stale; the cache is emptied when the rebuild ends.
--
-- The table is UNLOGGED (a crash empties it, and with it the rebuild that filled it) and holds
-- rows only while a rebuild of several read models runs; one such rebuild runs at a time.

CREATE UNLOGGED TABLE projections.statement_facts_cache (
    store_id      bigint NOT NULL,
    position      bigint NOT NULL,
    statement_id  uuid NOT NULL,
    ifi           text,
    verb          text NOT NULL,
    activity_id   text,
    courses       text[] NOT NULL,
    success       boolean,
    score         float8,
    duration_s    float8,
    at            timestamptz NOT NULL,
    voids         uuid,
    PRIMARY KEY (store_id, position)
);

-- The facts of a store's statements in (after, upto], as statement_facts: cached rows for the
-- positions up to p_cached_upto (which the caller filled: the cache covers them), extracted ones
-- above. p_like as in statement_facts (a hint for voiding statements; the cached branch keeps
-- the rows with voids instead). With p_cached_upto 0 this is statement_facts and the same plan.
CREATE FUNCTION projections.window_facts(p_store bigint, p_after bigint, p_upto bigint, p_cached_upto bigint,
                                         p_like text DEFAULT NULL)
RETURNS TABLE (statement_id uuid, ifi text, verb text, activity_id text, courses text[], success boolean,
               score float8, duration_s float8, at timestamptz, voids uuid, "position" bigint)
LANGUAGE sql STABLE AS $$
    SELECT f.statement_id, f.ifi, f.verb, f.activity_id, f.courses, f.success, f.score, f.duration_s, f.at,
           f.voids, f.position
    FROM projections.statement_facts_cache f
    WHERE f.store_id = p_store AND f.position > p_after AND f.position <= least(p_upto, p_cached_upto)
      AND (p_like IS NULL OR f.voids IS NOT NULL)
    UNION ALL
    SELECT f.* FROM projections.statement_facts(p_store, greatest(p_after, least(p_upto, p_cached_upto)), p_upto,
                                                p_like) f
$$;
