-- 0030: a definition that names an interactionType describes the interaction as a whole.
--
-- 0027 dropped the stored interaction properties only when the incoming interactionType
-- differed from the stored one. A review found the merge then depends on how appends are
-- grouped: one append's statements (one batch, or concurrent requests group commit joins) are
-- folded in Python first and merged into the stored definition once. Stored a choice with its
-- choices, then statement A says likert (with a scale) and B says choice (without choices):
-- one at a time that ends as a bare choice, in one group as the choice with its old choices
-- (the fold of A and B is a choice, the stored type). The canonical definition must not depend
-- on request timing.
--
-- So whenever the incoming definition names an interactionType, the stored interaction
-- properties (interactionType, correctResponsesPattern, the component lists) are dropped before
-- the merge, whatever the stored type. That rule gives one answer however the definitions are
-- grouped (merging is associative: tests/integration/test_append_paths.py checks every
-- grouping of a set of definitions against the SQL). The price: a statement that names the
-- type without its components (choices, say) leaves the canonical definition without them.
-- lrs.ops.activities.merge_definition is the same rule.
--
-- spor_definition_unchanged: a definition that names an interactionType leaves the stored one
-- unchanged only if the stored one has no interaction property it lacks.

CREATE OR REPLACE FUNCTION spor_merge_definition(stored jsonb, incoming jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN incoming ? 'interactionType'
                THEN stored - ARRAY['interactionType', 'correctResponsesPattern', 'choices', 'scale', 'source',
                                    'target', 'steps']
                ELSE stored END
        || incoming
        || CASE WHEN jsonb_typeof(stored->'name') = 'object' AND jsonb_typeof(incoming->'name') = 'object'
                THEN jsonb_build_object('name', (stored->'name') || (incoming->'name'))
                ELSE '{}'::jsonb END
        || CASE WHEN jsonb_typeof(stored->'description') = 'object' AND jsonb_typeof(incoming->'description') = 'object'
                THEN jsonb_build_object('description', (stored->'description') || (incoming->'description'))
                ELSE '{}'::jsonb END
$$;

CREATE OR REPLACE FUNCTION spor_definition_unchanged(stored jsonb, incoming jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT stored @> incoming
       AND coalesce(incoming->'extensions' = stored->'extensions', true)
       AND coalesce(incoming->'correctResponsesPattern' = stored->'correctResponsesPattern', true)
       AND coalesce(incoming->'choices' = stored->'choices', true)
       AND coalesce(incoming->'scale' = stored->'scale', true)
       AND coalesce(incoming->'source' = stored->'source', true)
       AND coalesce(incoming->'target' = stored->'target', true)
       AND coalesce(incoming->'steps' = stored->'steps', true)
       AND (NOT incoming ? 'interactionType'
            OR NOT EXISTS (SELECT 1
                           FROM unnest(ARRAY['correctResponsesPattern', 'choices', 'scale', 'source', 'target',
                                             'steps']) AS p(k)
                           WHERE stored ? p.k AND NOT incoming ? p.k))
$$;
