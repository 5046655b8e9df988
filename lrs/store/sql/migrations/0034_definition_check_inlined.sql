-- 0034: the check that a definition changes nothing is inlined into the append again.
--
-- spor_definition_unchanged (0032) held a sub-select (NOT EXISTS over the unnest of six
-- interaction properties). PostgreSQL inlines a scalar SQL function into the query calling it
-- only when its body has no sub-select; otherwise each call starts the SQL-function executor.
-- spor_merge_definitions asks it once per Activity of an append group, under the store's lock:
-- ~160 calls of ~20 us for a group of ~200 statements (bench/ingest (b) --pg-stats: the
-- activities upsert 3.7 ms of the lock's 28.5 ms a group). The same test, the interaction
-- properties written out one by one, is a plain expression: inlined, as 0030's was.

CREATE OR REPLACE FUNCTION spor_definition_unchanged(stored jsonb, incoming jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (stored @> (incoming - 'spor:order')
            AND coalesce(incoming->'extensions' = stored->'extensions', true)
            AND coalesce(incoming->'correctResponsesPattern' = stored->'correctResponsesPattern', true)
            AND coalesce(incoming->'choices' = stored->'choices', true)
            AND coalesce(incoming->'scale' = stored->'scale', true)
            AND coalesce(incoming->'source' = stored->'source', true)
            AND coalesce(incoming->'target' = stored->'target', true)
            AND coalesce(incoming->'steps' = stored->'steps', true)
            -- an interaction definition sent without a property the stored one has (the merge
            -- drops it: 0027, 0030)
            AND (NOT incoming ? 'interactionType'
                 OR ((NOT stored ? 'correctResponsesPattern' OR incoming ? 'correctResponsesPattern')
                     AND (NOT stored ? 'choices' OR incoming ? 'choices')
                     AND (NOT stored ? 'scale' OR incoming ? 'scale')
                     AND (NOT stored ? 'source' OR incoming ? 'source')
                     AND (NOT stored ? 'target' OR incoming ? 'target')
                     AND (NOT stored ? 'steps' OR incoming ? 'steps'))))
        OR spor_merge_definition(stored, incoming) = stored
$$;
