-- Everything Spor holds about one person, for an access request (`spor person export`).
-- The caller is an owner connection (an administration command); every query names its store.

-- name: person_identity_events
-- The identifier links and unlinks that name the people or the identifiers asked about, oldest
-- first (the newest of an identifier's says whose it is now); by the indexes of migration 0038.
SELECT e.position, e.kind, e.payload->>'person_id' AS person_id, e.payload->>'ifi' AS ifi
FROM events e
WHERE e.store_id = $1 AND e.kind LIKE 'person.%' AND e.kind IN ('person.linked', 'person.unlinked')
  AND (e.payload->>'person_id' = ANY ($2::text[]) OR e.payload->>'ifi' = ANY ($3::text[]))
ORDER BY e.position;

-- name: person_known
-- Which of the person ids the store's reference data names (any event of theirs).
SELECT DISTINCT e.payload->>'person_id' AS person_id
FROM events e
WHERE e.store_id = $1 AND e.kind LIKE 'person.%' AND e.payload->>'person_id' = ANY ($2::text[]);

-- name: person_linked_in_read_models
-- The person an identifier is linked to in the read models (which link each address's
-- mbox_sha1sum forms too, migration 0036).
SELECT person_id FROM rm_transcript.links WHERE store_id = $1 AND ifi = $2;

-- name: person_reference_events
-- The reference-data events about the people asked about (identifier links and unlinks,
-- employments), oldest first: those naming them, not others' links of the same identifier.
SELECT e.position, e.kind, e.recorded_at, e.payload::text AS payload
FROM events e
WHERE e.store_id = $1 AND e.kind LIKE 'person.%' AND e.payload->>'person_id' = ANY ($2::text[])
ORDER BY e.position;

-- name: person_statement_positions
-- The positions of the statements the filter terms find for the agent keys asked about (the
-- related_agents filter: actor, object, authority, context agents, members of Groups, and
-- statements referring to those), oldest first; voided statements too. Positions only (eight
-- bytes each): the bodies are read a page at a time.
SELECT DISTINCT r.first_position + u.off AS position
FROM statement_term_runs r, unnest(r.offsets) AS u(off)
WHERE r.store_id = $1
  AND r.term_key = ANY (ARRAY(SELECT hashtextextended(k, 0) FROM unnest($2::text[]) AS k))
  AND r.term = ANY ($2::text[])
ORDER BY 1;

-- name: person_statements_at
-- Those statements' bodies as stored, voided or not, with their attachments' hashes.
SELECT e.position, s.statement_id, e.payload::text AS payload, s.voided, s.attachment_sha2s
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
       d.sha256, c.content
FROM documents d
LEFT JOIN document_contents c ON c.store_id = d.store_id AND c.sha256 = d.sha256
WHERE d.store_id = $1 AND d.agent_key = ANY ($2::text[])
ORDER BY d.resource, d.activity_id, d.registration, d.doc_id;

-- name: person_document_events
-- The history of those documents: every put, merge and delete, oldest first.
SELECT e.position, e.kind, e.recorded_at, e.payload::text AS payload
FROM events e
WHERE e.store_id = $1 AND e.kind LIKE 'document.%' AND e.payload->>'agentKey' = ANY ($2::text[])
ORDER BY e.position;

-- name: person_document_content
-- The bytes of one document version, by its hash.
SELECT content FROM document_contents WHERE store_id = $1 AND sha256 = $2;

-- name: person_course_facts
-- The course status read model's rows of some statements (one per statement and course).
SELECT f.statement_id::text AS statement_id, f.course_id, f.activity_id, f.ifi, f.verb, f.success, f.score,
       f.duration_s, f.at
FROM rm_course_status.activity_facts f
WHERE f.store_id = $1 AND f.statement_id = ANY ($2::uuid[])
ORDER BY f.at, f.statement_id, f.course_id;

-- name: person_names
-- The names statements gave the agent keys asked about.
SELECT agent_key, name FROM agent_names WHERE store_id = $1 AND agent_key = ANY ($2::text[])
ORDER BY agent_key, name;

-- name: person_record_export
-- Record the export in the audit trail: no credential (an administration command); `persons`
-- names every agent key it covered, so `spor audit --person` finds it.
INSERT INTO audit_log (store_id, credential_id, person, action, request, records)
VALUES ($1, NULL, NULL, 'person.export', $2, $3);

-- name: person_erasure_begin
-- Say that this transaction's deletes from the log are an erasure (migration 0037); until it ends.
SELECT set_config('spor.erasure', 'on', true);

-- name: person_statement_terms_at
-- The recorded filter terms of the statements at some positions, with the body as stored of
-- those whose terms are NULL (their body's own, migration 0044; lrs.store.statements.recorded_terms).
SELECT s.position, s.terms::text AS terms, CASE WHEN s.terms IS NULL THEN e.payload::text END AS payload
FROM statements s
JOIN events e ON e.store_id = s.store_id AND e.position = s.position
WHERE s.store_id = $1 AND s.position = ANY ($2::bigint[]);

-- name: person_erase_statement_terms
-- The filter terms of the statements being erased (pairs of term and position, as
-- person_statement_terms_at gives them), before their rows go: taken out of their runs (0042).
SELECT r.term FROM spor_terms_remove($1, $2::text[], $3::bigint[]) AS r;

-- name: person_erase_statements
-- The statements being erased, from the index and the log; their attachments' hashes.
WITH st AS (
    DELETE FROM statements WHERE store_id = $1 AND position = ANY ($2::bigint[])
    RETURNING attachment_sha2s
), ev AS (
    DELETE FROM events WHERE store_id = $1 AND position = ANY ($2::bigint[]) AND kind = 'statement'
    RETURNING position
)
SELECT (SELECT count(*) FROM ev) AS events,
       ARRAY(SELECT DISTINCT u FROM st, unnest(st.attachment_sha2s) AS u) AS sha2s;

-- name: person_referrers
-- The statements that refer to some statements (StatementRef objects, voidings), with their
-- bodies and recorded terms.
SELECT s.statement_id, s.position, s.refers_to, s.terms, e.payload::text AS payload
FROM statements s
JOIN events e ON e.store_id = s.store_id AND e.position = s.position
WHERE s.store_id = $1 AND s.refers_to = ANY ($2::uuid[])
ORDER BY s.position;

-- name: person_referrer_terms_gone
-- A referrer's filter terms as recorded, before its new ones are written.
SELECT count(*) FROM spor_terms_remove($1, $3::text[], array_fill($2::bigint, ARRAY[cardinality($3::text[])]));

-- name: person_referrer_terms
-- A referrer's filter terms, anew ($3: {term: direct}), in the index and in its row.
WITH t AS (
    SELECT spor_terms_add($1, array_agg(x.key), array_agg($2::bigint), array_agg(x.value::boolean)) AS done
    FROM jsonb_each($3::jsonb) AS x
)
UPDATE statements SET terms = $3::jsonb
WHERE store_id = $1 AND position = $2 AND (SELECT count(*) FROM t) = 1;

-- name: person_erase_terms_elsewhere
-- The person's agent terms on the statements that stay (others' statements naming them in
-- context, as a Group's member, or referring to theirs): the filters no longer find those by
-- the person; each statement's recorded terms lose them too. The positions of those whose terms
-- are their body's own (NULL, 0044): the caller records the rest of them (person_record_terms).
WITH runs_gone AS (
    DELETE FROM statement_term_runs
    WHERE store_id = $1 AND term = ANY ($2::text[])
      AND term_key = ANY (ARRAY(SELECT hashtextextended(k, 0) FROM unnest($2::text[]) AS k))
    RETURNING first_position, offsets
), gone AS (
    SELECT DISTINCT r.first_position + u.off AS position FROM runs_gone r, unnest(r.offsets) AS u(off)
), recorded AS (
    UPDATE statements SET terms = terms - $2::text[]
    WHERE store_id = $1 AND position IN (SELECT position FROM gone) AND terms IS NOT NULL
)
SELECT s.position FROM statements s
WHERE s.store_id = $1 AND s.position IN (SELECT position FROM gone) AND s.terms IS NULL
ORDER BY s.position;

-- name: person_record_terms
-- Record the filter terms of statements at some positions ($3: a JSON object each).
UPDATE statements s SET terms = u.terms::jsonb
FROM unnest($2::bigint[], $3::text[]) AS u(position, terms)
WHERE s.store_id = $1 AND s.position = u.position;

-- name: person_erase_attachments
-- Attachments of erased statements that no statement left holds.
DELETE FROM attachments a
WHERE a.store_id = $1 AND a.sha2 = ANY ($2::text[])
  AND NOT EXISTS (SELECT 1 FROM statements s WHERE s.store_id = $1 AND s.attachment_sha2s && ARRAY[a.sha2]);

-- name: person_erase_activities
-- The definitions of the activities the erased statements named that no statement left names
-- (the object's or the context's: the terms index holds both); the ids of those gone.
DELETE FROM activities a
WHERE a.store_id = $1 AND a.activity_id = ANY ($2::text[])
  AND NOT EXISTS (SELECT 1 FROM statement_term_runs t
                  WHERE t.store_id = $1 AND t.term_key = hashtextextended('o:' || a.activity_id, 0)
                    AND t.term = 'o:' || a.activity_id)
RETURNING a.activity_id;

-- name: person_activity_profiles
-- How many activity profiles the store keeps for some activities.
SELECT count(*) FROM documents
WHERE store_id = $1 AND resource = 'activity_profile' AND activity_id = ANY ($2::text[]);

-- name: person_erase_links_of
-- Every link and unlink of some identifiers, whoever they name, and the digests the import keeps
-- of them: the identifiers are nobody's afterwards. How many events went.
WITH ev AS (
    DELETE FROM events e
    WHERE e.store_id = $1 AND e.kind LIKE 'person.%' AND e.kind IN ('person.linked', 'person.unlinked')
      AND e.payload->>'ifi' = ANY ($2::text[])
    RETURNING e.position
), keys AS (
    DELETE FROM projections.reference_keys k
    WHERE k.store_id = $1 AND k.kind = 'person.link' AND k.key = ANY ($2::text[])
)
SELECT count(*) FROM ev;

-- name: person_erase_documents
-- The person's State and Agent Profile documents, and every event of their history; the hashes
-- of the contents they named.
WITH docs AS (
    DELETE FROM documents WHERE store_id = $1 AND agent_key = ANY ($2::text[])
    RETURNING sha256
), ev AS (
    DELETE FROM events e
    WHERE e.store_id = $1 AND e.kind LIKE 'document.%'
      AND e.payload->>'agentKey' = ANY ($2::text[])
    RETURNING decode(e.payload->>'sha256', 'hex') AS sha256
)
SELECT (SELECT count(*) FROM docs) AS documents, (SELECT count(*) FROM ev) AS events,
       ARRAY(SELECT sha256 FROM docs UNION SELECT sha256 FROM ev WHERE sha256 IS NOT NULL) AS contents;

-- name: person_erase_document_contents
-- Contents no document and no document event left names (contents are shared by hash).
DELETE FROM document_contents c
WHERE c.store_id = $1 AND c.sha256 = ANY ($2::bytea[])
  AND NOT EXISTS (SELECT 1 FROM documents d WHERE d.store_id = $1 AND d.sha256 = c.sha256)
  AND NOT EXISTS (SELECT 1 FROM events e
                  WHERE e.store_id = $1 AND e.kind LIKE 'document.%'
                    AND e.payload->>'sha256' = encode(c.sha256, 'hex'));

-- name: person_erase_names
-- The names statements gave the person.
DELETE FROM agent_names WHERE store_id = $1 AND agent_key = ANY ($2::text[]);

-- name: person_erase_reference
-- The reference-data events naming the people (links, unlinks, employments) and the digests
-- the import keeps of them (a later import of the same rows appends them again).
WITH ev AS (
    DELETE FROM events e
    WHERE e.store_id = $1 AND e.kind LIKE 'person.%'
      AND e.payload->>'person_id' = ANY ($2::text[])
    RETURNING e.position
), keys AS (
    DELETE FROM projections.reference_keys k
    WHERE k.store_id = $1 AND k.position IN (SELECT position FROM ev)
)
SELECT count(*) FROM ev;

-- name: person_erasure_event
-- The erasure's own event: what was erased, in counts; no identifier.
INSERT INTO events (store_id, position, kind, recorded_at, statement_id, payload)
VALUES ($1, $2, 'person.erased', $3, NULL, $4::jsonb);

-- name: person_record_erasure
-- Record the erasure in the audit trail (kept: who read the person's records, and that they
-- were erased); `persons` names the identifiers and person ids it covered.
INSERT INTO audit_log (store_id, credential_id, person, action, request, records)
VALUES ($1, NULL, NULL, 'person.erase', $2, $3);
