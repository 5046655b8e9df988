-- 0032: a canonical Activity definition is bounded.
--
-- Merging a definition into the stored one replaces every property but the language maps
-- `name` and `description`, which are merged tag by tag. So a client sending definitions with
-- new language tags grew one activity's canonical definition without end (an audit made one of
-- 7.9 MB), and every later statement that changed it rewrote all of it under the store's append
-- lock: 0.5 s a statement, every writer of the store waiting.
--
-- Two bounds, both keeping merging associative (the canonical definition must not depend on how
-- appends are grouped, 0030):
--   * a language map holds at most 100 tags, the first to arrive: once full, a new tag is left
--     out, and the values of the tags it holds are still replaced. A tag is never taken out
--     again, so made-up tags sent later cannot push out an activity's names. A group's fold
--     (lrs.ops.activities.merge_language_map) keeps every tag, in the order they arrived (a tag
--     the store holds may come after many new ones, and its value must still be replaced), and
--     the store adds the fold's new tags in that order, so a group ends as its statements one by
--     one would. A jsonb object keeps no order, so each definition of a group comes with the
--     order of its maps' tags beside them (the member "spor:order", which no definition can
--     have: lrs.ops.activities.with_tag_order); without it (a server of the previous release,
--     during a rolling upgrade, which also sends definitions unfiltered) the tags are taken in
--     jsonb's order.
--   * each statement's definition is filtered before any merge, in Python
--     (lrs.ops.activities.canonical_offer): language map values over 4,096 characters and whole
--     definitions over 256 KiB without them are left out of the canonical definition. A filter of
--     each statement alone is the same in any grouping.
-- The statements themselves are kept and returned exactly as sent.
--
-- spor_definition_unchanged says "unchanged" also when the merge leaves a full map as it is (a
-- new tag left out): a statement repeating such a tag rewrites nothing.
--
-- Stored maps with more tags are cut to their first 100 in jsonb's order now (their order of
-- arrival is not known).

-- incoming over stored (both objects): stored's tags take incoming's values, and incoming's
-- other tags are added in the order tag_order gives (a JSON array of its tags; NULL: jsonb's
-- order) while the map has fewer than 100. A group's fold sends every tag its statements sent
-- (a tag this map holds may come after many new ones), so the loop looks at the stored tags and
-- at new ones only while there is room. PL/pgSQL: a SQL function with the set-returning calls
-- this needs is not inlined, and cost ~20 times the old merge a definition.
CREATE FUNCTION spor_merge_language_map(stored jsonb, incoming jsonb, tag_order jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    merged jsonb := stored || incoming;
    room bigint;
    tag text;
BEGIN
    IF (SELECT count(*) FROM jsonb_object_keys(merged)) <= 100 THEN
        RETURN merged;  -- every tag fits: the order does not matter
    END IF;
    merged := stored || coalesce((SELECT jsonb_object_agg(k, incoming -> k) FROM jsonb_object_keys(stored) AS k
                                  WHERE incoming ? k), '{}'::jsonb);
    room := 100 - (SELECT count(*) FROM jsonb_object_keys(stored));
    IF room <= 0 THEN
        RETURN merged;
    END IF;
    FOR tag IN SELECT t.tag FROM jsonb_array_elements_text(
                   CASE WHEN jsonb_typeof(tag_order) = 'array' THEN tag_order
                        ELSE (SELECT coalesce(jsonb_agg(k), '[]'::jsonb) FROM jsonb_object_keys(incoming) AS k) END)
                   WITH ORDINALITY AS t(tag, n)
               ORDER BY t.n LOOP
        IF incoming ? tag AND NOT merged ? tag THEN
            merged := merged || jsonb_build_object(tag, incoming -> tag);
            room := room - 1;
            EXIT WHEN room = 0;
        END IF;
    END LOOP;
    RETURN merged;
END
$$;

CREATE OR REPLACE FUNCTION spor_merge_definition(stored jsonb, incoming jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN incoming ? 'interactionType'
                THEN stored - ARRAY['interactionType', 'correctResponsesPattern', 'choices', 'scale', 'source',
                                    'target', 'steps']
                ELSE stored END
        || (incoming - 'spor:order')
        || CASE WHEN jsonb_typeof(incoming->'name') = 'object'
                THEN jsonb_build_object('name', spor_merge_language_map(
                    CASE WHEN jsonb_typeof(stored->'name') = 'object' THEN stored->'name' ELSE '{}'::jsonb END,
                    incoming->'name', incoming->'spor:order'->'name'))
                ELSE '{}'::jsonb END
        || CASE WHEN jsonb_typeof(incoming->'description') = 'object'
                THEN jsonb_build_object('description', spor_merge_language_map(
                    CASE WHEN jsonb_typeof(stored->'description') = 'object' THEN stored->'description'
                         ELSE '{}'::jsonb END,
                    incoming->'description', incoming->'spor:order'->'description'))
                ELSE '{}'::jsonb END
$$;

-- 0030's test, which is exact while every tag fits, or else the merge itself.
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
            AND (NOT incoming ? 'interactionType'
                 OR NOT EXISTS (SELECT 1
                                FROM unnest(ARRAY['correctResponsesPattern', 'choices', 'scale', 'source', 'target',
                                                  'steps']) AS p(k)
                                WHERE stored ? p.k AND NOT incoming ? p.k)))
        OR spor_merge_definition(stored, incoming) = stored
$$;

-- A definition new to the store is the merge into nothing: its maps become objects (of at most
-- 100 tags), its "spor:order" dropped. The conflict arm merges the group's definition as sent
-- (p_defs), not the inserted value, whose maps lost their order.
CREATE OR REPLACE FUNCTION spor_merge_definitions(p_store bigint, p_defs jsonb, p_names jsonb)
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    -- a definition whose merge would change nothing is left alone before the upsert (0016,
    -- 0022; a scalar subquery: NOT EXISTS is planned as an anti join that hashes the store's
    -- whole activities table)
    INSERT INTO activities AS a (store_id, activity_id, definition)
    SELECT p_store, d.key, spor_merge_definition('{}'::jsonb, d.value) FROM jsonb_each(p_defs) AS d
    WHERE NOT coalesce((SELECT spor_definition_unchanged(x.definition, d.value) FROM activities x
                        WHERE x.store_id = p_store AND x.activity_id = d.key), false)
    ON CONFLICT (store_id, activity_id) DO UPDATE
        SET definition = spor_merge_definition(a.definition, p_defs -> a.activity_id)
        WHERE NOT spor_definition_unchanged(a.definition, p_defs -> a.activity_id);
    INSERT INTO agent_names (store_id, agent_key, name)
    SELECT p_store, n->>0, n->>1 FROM jsonb_array_elements(p_names) AS n
    ON CONFLICT (store_id, agent_key, name) DO NOTHING;
END
$$;
ALTER FUNCTION spor_merge_definitions(bigint, jsonb, jsonb) SET plan_cache_mode = force_generic_plan;

UPDATE activities
SET definition = definition
    || CASE WHEN jsonb_typeof(definition->'name') = 'object'
            THEN jsonb_build_object('name', spor_merge_language_map('{}'::jsonb, definition->'name', NULL))
            ELSE '{}'::jsonb END
    || CASE WHEN jsonb_typeof(definition->'description') = 'object'
            THEN jsonb_build_object('description', spor_merge_language_map('{}'::jsonb, definition->'description', NULL))
            ELSE '{}'::jsonb END
WHERE (jsonb_typeof(definition->'name') = 'object'
       AND (SELECT count(*) FROM jsonb_object_keys(definition->'name')) > 100)
   OR (jsonb_typeof(definition->'description') = 'object'
       AND (SELECT count(*) FROM jsonb_object_keys(definition->'description')) > 100);
