-- Everything Spor holds about one person, for an access request (`spor person export`).
-- The caller is an owner connection (an administration command); every query names its store.

-- name: person_identity_events
-- The identifier links and unlinks that name the people or the identifiers asked about, oldest
-- first (the newest of an identifier's says whose it is now). Reads the store's non-statement
-- events by their partial index (events_reference).
SELECT e.position, e.kind, e.payload->>'person_id' AS person_id, e.payload->>'ifi' AS ifi
FROM events e
WHERE e.store_id = $1 AND e.kind <> 'statement' AND e.kind IN ('person.linked', 'person.unlinked')
  AND (e.payload->>'person_id' = ANY ($2::text[]) OR e.payload->>'ifi' = ANY ($3::text[]))
ORDER BY e.position;

-- name: person_reference_events
-- The reference-data events about the people asked about (identifier links and unlinks,
-- employments), oldest first: those naming them, not others' links of the same identifier.
SELECT e.position, e.kind, e.recorded_at, e.payload::text AS payload
FROM events e
WHERE e.store_id = $1 AND e.kind <> 'statement' AND e.kind LIKE 'person.%'
  AND e.payload->>'person_id' = ANY ($2::text[])
ORDER BY e.position;

-- name: person_statement_positions
-- The positions of the statements the filter terms find for the agent keys asked about (the
-- related_agents filter: actor, object, authority, context agents, members of Groups, and
-- statements referring to those), oldest first; voided statements too. Positions only (eight
-- bytes each): the bodies are read a page at a time.
SELECT DISTINCT t.position
FROM statement_terms t
WHERE t.store_id = $1 AND t.term = ANY ($2::text[])
ORDER BY t.position;

-- name: person_statements_at
-- Those statements' bodies as stored, voided or not, with their attachments' hashes.
SELECT e.position, e.payload::text AS payload, s.voided, s.attachment_sha2s
FROM events e
JOIN statements s ON s.store_id = e.store_id AND s.position = e.position
WHERE e.store_id = $1 AND e.position = ANY ($2::bigint[])
ORDER BY e.position;

-- name: person_attachment
-- One attachment's content type and bytes.
SELECT content_type, content FROM attachments WHERE store_id = $1 AND sha2 = $2;

-- name: person_documents
-- The State and Agent Profile documents kept for the agent keys asked about, with their bytes.
SELECT d.resource, d.activity_id, d.agent_key, d.registration, d.doc_id, d.content_type, d.etag, d.updated,
       c.content
FROM documents d
LEFT JOIN document_contents c ON c.store_id = d.store_id AND c.sha256 = d.sha256
WHERE d.store_id = $1 AND d.agent_key = ANY ($2::text[])
ORDER BY d.resource, d.activity_id, d.registration, d.doc_id;

-- name: person_document_events
-- The history of those documents: every put, merge and delete, oldest first.
SELECT e.position, e.kind, e.recorded_at, e.payload::text AS payload
FROM events e
WHERE e.store_id = $1 AND e.kind <> 'statement' AND e.kind LIKE 'document.%'
  AND e.payload->>'agentKey' = ANY ($2::text[])
ORDER BY e.position;

-- name: person_names
-- The names statements gave the agent keys asked about.
SELECT agent_key, name FROM agent_names WHERE store_id = $1 AND agent_key = ANY ($2::text[])
ORDER BY agent_key, name;

-- name: person_record_export
-- Record the export in the audit trail: no credential (an administration command); `persons`
-- names every agent key it covered, so `spor audit --person` finds it.
INSERT INTO audit_log (store_id, credential_id, person, action, request, records)
VALUES ($1, NULL, NULL, 'person.export', $2, $3);
