-- Session scope for row-level security (see migration 0004).

-- name: set_scope
-- Name the stores this connection may read and the one it may write ('' for none).
SELECT set_config('spor.store_ids', $1, false), set_config('spor.write_store', $2, false);
