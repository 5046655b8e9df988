-- Canonical Activity definitions and agent names: inline projections of the statement log.

-- name: upsert_definitions
-- Merge Activity definitions (language maps merged, other properties replaced) and record agent names.
WITH defs AS (
    INSERT INTO activities AS a (store_id, activity_id, definition)
    SELECT $1, id, def FROM unnest($2::text[], $3::jsonb[]) AS u(id, def)
    ON CONFLICT (store_id, activity_id) DO UPDATE
        SET definition = a.definition || EXCLUDED.definition
            || CASE WHEN jsonb_typeof(a.definition->'name') = 'object'
                         AND jsonb_typeof(EXCLUDED.definition->'name') = 'object'
                    THEN jsonb_build_object('name', (a.definition->'name') || (EXCLUDED.definition->'name'))
                    ELSE '{}'::jsonb END
            || CASE WHEN jsonb_typeof(a.definition->'description') = 'object'
                         AND jsonb_typeof(EXCLUDED.definition->'description') = 'object'
                    THEN jsonb_build_object('description',
                                            (a.definition->'description') || (EXCLUDED.definition->'description'))
                    ELSE '{}'::jsonb END
        -- most statements repeat a definition already known: leave the row alone then
        WHERE NOT (a.definition @> EXCLUDED.definition)
)
INSERT INTO agent_names (store_id, agent_key, name)
SELECT $1, k, n FROM unnest($4::text[], $5::text[]) AS u(k, n)
ON CONFLICT (store_id, agent_key, name) DO NOTHING;

-- name: canonical_definitions
-- Canonical definitions of the given Activity ids of a store.
SELECT activity_id, definition FROM activities WHERE store_id = $1 AND activity_id = ANY($2::text[]);

-- name: agent_names
-- Names seen in statements for an agent key.
SELECT name FROM agent_names WHERE store_id = $1 AND agent_key = $2 ORDER BY name;
