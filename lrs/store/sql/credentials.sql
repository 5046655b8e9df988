-- Stores and credentials.

-- name: store_create
-- Create a store; returns its id.
INSERT INTO stores (name, organisation, region) VALUES ($1, $2, $3) RETURNING id;

-- name: store_by_name
-- A store by its name.
SELECT id, name, organisation, region, created_at, last_position FROM stores WHERE name = $1;

-- name: store_list
-- Every store with the last position of its log (positions may have gaps: migrations 0037, 0039).
SELECT id, name, organisation, region, created_at, last_position FROM stores ORDER BY id;

-- name: credential_create
-- Create a credential of a store; returns its id.
INSERT INTO credentials (store_id, key, secret_hash, label, scopes, authority, expires_at, region, rotated_from)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id;

-- name: credential_by_key
-- The credential with this key, with whether it is usable now.
SELECT c.id, c.store_id, c.key, c.secret_hash, c.label, c.scopes, c.authority, c.expires_at, c.revoked_at,
       c.revoked_at IS NULL AND (c.expires_at IS NULL OR c.expires_at > now()) AS active, c.region,
       CASE WHEN c.region IS NULL THEN ARRAY[c.store_id]
            ELSE (SELECT array_agg(s.id ORDER BY s.id) FROM stores s WHERE s.region = c.region) END AS read_stores
FROM credentials c WHERE c.key = $1;

-- name: credential_list
-- Credentials of all stores (never the secret hash).
SELECT c.id, s.name AS store, c.key, c.label, c.scopes, c.region, c.created_at, c.expires_at, c.revoked_at
FROM credentials c JOIN stores s ON s.id = c.store_id ORDER BY c.id;

-- name: credential_expire
-- Let a credential expire at a given time (rotation with a grace period); returns its key.
UPDATE credentials SET expires_at = least(coalesce(expires_at, $2), $2)
WHERE key = $1 AND revoked_at IS NULL RETURNING key;

-- name: credential_revoke
-- Revoke a credential by key; returns the key when one was revoked.
UPDATE credentials SET revoked_at = now() WHERE key = $1 AND revoked_at IS NULL RETURNING key;

-- name: credential_count
-- How many credentials exist (first start creates a default one when none do).
SELECT count(*) FROM credentials;
