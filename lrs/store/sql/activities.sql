-- Canonical Activity definitions and agent names: inline projections of the statement log.

-- name: merge_definitions
-- Merge Activity definitions ({id: definition}; language maps merged, other properties replaced)
-- and record agent names ([[key, name], ...]); the function is in migration 0022, and the
-- one-round-trip append calls it too.
SELECT spor_merge_definitions($1, $2::jsonb, $3::jsonb);

-- name: canonical_definitions
-- Canonical definitions of the given Activity ids of a store.
SELECT activity_id, definition FROM activities WHERE store_id = $1 AND activity_id = ANY($2::text[]);

-- name: agent_names
-- Names seen in statements for an agent key: the first $3 in order.
SELECT name FROM agent_names WHERE store_id = $1 AND agent_key = $2 ORDER BY name LIMIT $3;
