-- 0032: a canonical Activity definition is bounded.
--
-- Merging a definition into the stored one replaces every property but the language maps
-- `name` and `description`, which are merged tag by tag. So a client sending definitions with
-- new language tags grew one activity's canonical definition without end (an audit made one of
-- 7.9 MB), and every later statement that changed it rewrote all of it under the store's append
-- lock: 0.5 s a statement, every writer of the store waiting.
--
-- Two bounds, both chosen so merging stays associative (the canonical definition must not
-- depend on how appends are grouped, 0030):
--   * a merged language map keeps its 100 smallest tags, in code point order (COLLATE "C" on
--     UTF-8 text): the smallest 100 of a union are the smallest 100 of the smallest 100 of its
--     parts, however the parts are grouped. spor_first_tags does it here,
--     lrs.ops.activities._first_tags in the fold of one append;
--   * each statement's definition is filtered before any merge, in Python
--     (lrs.ops.activities.canonical_offer): language map values over 4,096 characters and whole
--     definitions over 256 KiB are left out of the canonical definition. A filter of each
--     statement alone is the same in any grouping.
-- The statements themselves are kept and returned exactly as sent.
--
-- Stored definitions with more tags are cut to the same rule now.

CREATE FUNCTION spor_first_tags(m jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN (SELECT count(*) FROM jsonb_object_keys(m)) <= 100 THEN m
                ELSE (SELECT jsonb_object_agg(f.k, f.v)
                      FROM (SELECT e.k, e.v FROM jsonb_each(m) AS e(k, v) ORDER BY e.k COLLATE "C" LIMIT 100) AS f)
           END
$$;

CREATE OR REPLACE FUNCTION spor_merge_definition(stored jsonb, incoming jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN incoming ? 'interactionType'
                THEN stored - ARRAY['interactionType', 'correctResponsesPattern', 'choices', 'scale', 'source',
                                    'target', 'steps']
                ELSE stored END
        || incoming
        || CASE WHEN jsonb_typeof(stored->'name') = 'object' AND jsonb_typeof(incoming->'name') = 'object'
                THEN jsonb_build_object('name', spor_first_tags((stored->'name') || (incoming->'name')))
                ELSE '{}'::jsonb END
        || CASE WHEN jsonb_typeof(stored->'description') = 'object' AND jsonb_typeof(incoming->'description') = 'object'
                THEN jsonb_build_object('description',
                                        spor_first_tags((stored->'description') || (incoming->'description')))
                ELSE '{}'::jsonb END
$$;

UPDATE activities
SET definition = definition
    || CASE WHEN jsonb_typeof(definition->'name') = 'object'
            THEN jsonb_build_object('name', spor_first_tags(definition->'name')) ELSE '{}'::jsonb END
    || CASE WHEN jsonb_typeof(definition->'description') = 'object'
            THEN jsonb_build_object('description', spor_first_tags(definition->'description')) ELSE '{}'::jsonb END
WHERE (jsonb_typeof(definition->'name') = 'object'
       AND (SELECT count(*) FROM jsonb_object_keys(definition->'name')) > 100)
   OR (jsonb_typeof(definition->'description') = 'object'
       AND (SELECT count(*) FROM jsonb_object_keys(definition->'description')) > 100);
