-- Documents (State, Activity Profile, Agent Profile): events in the log + the inline projection.

-- name: document_current
-- The current version of one document; its bytes only when $7 (a merge needs them).
SELECT d.content_type, d.etag, d.updated, CASE WHEN $7::boolean THEN c.content END AS content
FROM documents d
LEFT JOIN document_contents c ON c.store_id = d.store_id AND c.sha256 = d.sha256
WHERE d.store_id = $1 AND d.resource = $2 AND d.activity_id = $3 AND d.agent_key = $4
  AND d.registration = $5 AND d.doc_id = $6;

-- name: document_size
-- The type and size of one document's bytes (octet_length of a bytea reads the value's header,
-- not the value).
SELECT d.content_type, octet_length(c.content) AS size
FROM documents d
LEFT JOIN document_contents c ON c.store_id = d.store_id AND c.sha256 = d.sha256
WHERE d.store_id = $1 AND d.resource = $2 AND d.activity_id = $3 AND d.agent_key = $4
  AND d.registration = $5 AND d.doc_id = $6;

-- name: document_current_if_larger
-- As document_current, its bytes only when they are more than $7 (octet_length of a bytea
-- reads the value's header, not the value).
SELECT d.content_type, d.etag, d.updated, CASE WHEN octet_length(c.content) > $7 THEN c.content END AS content
FROM documents d
LEFT JOIN document_contents c ON c.store_id = d.store_id AND c.sha256 = d.sha256
WHERE d.store_id = $1 AND d.resource = $2 AND d.activity_id = $3 AND d.agent_key = $4
  AND d.registration = $5 AND d.doc_id = $6;

-- name: document_put
-- Store bytes (content-addressed), log the put/merge event, upsert the projection, bump the counter.
WITH content AS (
    INSERT INTO document_contents (store_id, sha256, content) VALUES ($1, $7, $8)
    ON CONFLICT (store_id, sha256) DO NOTHING
),
ev AS (
    INSERT INTO events (store_id, position, kind, recorded_at, statement_id, payload)
    VALUES ($1, $11, $12, $10, NULL, $13::jsonb)
),
doc AS (
    INSERT INTO documents (store_id, resource, activity_id, agent_key, registration, doc_id,
                           content_type, sha256, etag, updated, position)
    VALUES ($1, $2, $3, $4, $5, $6, $9, $7, $14, $10, $11)
    ON CONFLICT (store_id, resource, activity_id, agent_key, registration, doc_id) DO UPDATE
        SET content_type = EXCLUDED.content_type, sha256 = EXCLUDED.sha256, etag = EXCLUDED.etag,
            updated = EXCLUDED.updated, position = EXCLUDED.position
)
UPDATE stores SET last_position = $11 WHERE id = $1;

-- name: document_delete
-- Log the delete event, drop the document from the projection, bump the counter.
WITH ev AS (
    INSERT INTO events (store_id, position, kind, recorded_at, statement_id, payload)
    VALUES ($1, $7, 'document.delete', $8, NULL, $9::jsonb)
),
gone AS (
    DELETE FROM documents
    WHERE store_id = $1 AND resource = $2 AND activity_id = $3 AND agent_key = $4
      AND registration = $5 AND doc_id = $6
)
UPDATE stores SET last_position = $7 WHERE id = $1;

-- name: documents_delete_scope
-- Delete every document of a scope, one 'document.delete' event each; returns how many.
WITH gone AS (
    DELETE FROM documents
    WHERE store_id = $1 AND resource = $2 AND activity_id = $3 AND agent_key = $4
      AND ($5::text IS NULL OR registration = $5)
    RETURNING resource, activity_id, agent_key, registration, doc_id
),
numbered AS (
    SELECT g.*, $6::bigint + row_number() OVER (ORDER BY registration, doc_id) AS position FROM gone g
),
ev AS (
    INSERT INTO events (store_id, position, kind, recorded_at, statement_id, payload)
    SELECT $1, position, 'document.delete', $7, NULL,
           jsonb_build_object('resource', resource, 'activityId', activity_id, 'agentKey', agent_key,
                              'registration', registration, 'id', doc_id)
    FROM numbered
),
bump AS (
    UPDATE stores SET last_position = $6 + (SELECT count(*) FROM gone) WHERE id = $1
)
SELECT count(*) AS deleted FROM gone;

-- name: document_get
-- One document with its bytes.
SELECT d.content_type, d.etag, d.updated, c.content
FROM documents d
JOIN document_contents c ON c.store_id = d.store_id AND c.sha256 = d.sha256
WHERE d.store_id = $1 AND d.resource = $2 AND d.activity_id = $3 AND d.agent_key = $4
  AND d.registration = $5 AND d.doc_id = $6;

-- name: document_ids
-- Ids (and update times) of a scope's documents updated after $6 (exclusive), oldest first.
-- Without a registration the scope is every registration, where one State id may be stored
-- under several: each id once, with its latest update.
SELECT doc_id, max(updated) AS updated
FROM documents
WHERE store_id = $1 AND resource = $2 AND activity_id = $3 AND agent_key = $4
  AND ($5::text IS NULL OR registration = $5)
  AND ($6::timestamptz IS NULL OR updated > $6)
GROUP BY doc_id
ORDER BY 2, doc_id;

-- name: documents_clear_projection
-- Empty a store's document projection before a rebuild from the log.
DELETE FROM documents WHERE store_id = $1;

-- name: documents_rebuild
-- Refold a store's documents from its document events: the last event per document wins.
INSERT INTO documents (store_id, resource, activity_id, agent_key, registration, doc_id,
                       content_type, sha256, etag, updated, position)
SELECT $1, p->>'resource', p->>'activityId', p->>'agentKey', p->>'registration', p->>'id',
       p->>'contentType', decode(p->>'sha256', 'hex'), p->>'etag', recorded_at, position
FROM (
    SELECT DISTINCT ON (payload->>'resource', payload->>'activityId', payload->>'agentKey',
                        payload->>'registration', payload->>'id')
           kind, position, recorded_at, payload AS p
    FROM events
    WHERE store_id = $1 AND kind IN ('document.put', 'document.merge', 'document.delete')
    ORDER BY payload->>'resource', payload->>'activityId', payload->>'agentKey',
             payload->>'registration', payload->>'id', position DESC
) latest
WHERE kind <> 'document.delete';
