-- Canonical Activity definitions and agent names: inline projections of the statement log.

-- name: upsert_definitions
-- Merge Activity definitions (language maps merged, other properties replaced) and record agent
-- names (the function is in migration 0007; the one-round-trip append calls it too).
SELECT spor_upsert_definitions($1, $2::text[], $3::jsonb[], $4::text[], $5::text[]);

-- name: canonical_definitions
-- Canonical definitions of the given Activity ids of a store.
SELECT activity_id, definition FROM activities WHERE store_id = $1 AND activity_id = ANY($2::text[]);

-- name: agent_names
-- Names seen in statements for an agent key.
SELECT name FROM agent_names WHERE store_id = $1 AND agent_key = $2 ORDER BY name;
