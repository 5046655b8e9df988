-- Stores and credentials.

-- name: store_create
-- Create a store; returns its id.
INSERT INTO stores (name, organisation) VALUES ($1, $2) RETURNING id;

-- name: store_by_name
-- A store by its name.
SELECT id, name, organisation, created_at, last_position FROM stores WHERE name = $1;

-- name: store_list
-- Every store with its statement count.
SELECT id, name, organisation, created_at, last_position FROM stores ORDER BY id;

-- name: credential_create
-- Create a credential of a store; returns its id.
INSERT INTO credentials (store_id, key, secret_hash, label, scopes, authority, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id;

-- name: credential_by_key
-- The credential with this key, with whether it is usable now.
SELECT id, store_id, key, secret_hash, label, scopes, authority, expires_at, revoked_at,
       revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()) AS active
FROM credentials WHERE key = $1;

-- name: credential_list
-- Credentials of all stores (never the secret hash).
SELECT c.id, s.name AS store, c.key, c.label, c.scopes, c.created_at, c.expires_at, c.revoked_at
FROM credentials c JOIN stores s ON s.id = c.store_id ORDER BY c.id;

-- name: credential_revoke
-- Revoke a credential by key; returns the key when one was revoked.
UPDATE credentials SET revoked_at = now() WHERE key = $1 AND revoked_at IS NULL RETURNING key;

-- name: credential_count
-- How many credentials exist (first start creates a default one when none do).
SELECT count(*) FROM credentials;
