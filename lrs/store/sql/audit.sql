-- The audit trail of reads (append-only; see migration 0004).

-- name: audit_record
-- Record one read: who, which store, what was asked, how many records came back.
INSERT INTO audit_log (store_id, credential_id, person, action, request, records)
VALUES ($1, $2, $3, $4, $5, $6);

-- name: audit_by_credential
-- The reads made with one credential (by key), newest first.
SELECT a.id, a.at, s.name AS store, c.key AS credential, a.person, a.action, a.request, a.records
FROM audit_log a JOIN stores s ON s.id = a.store_id LEFT JOIN credentials c ON c.id = a.credential_id
WHERE c.key = $1 ORDER BY a.id DESC LIMIT $2;

-- name: audit_by_person
-- The reads made by, or about, one person, newest first: by the agent key of a reader or of an
-- xAPI agent parameter, or by a person id the analyst API returned rows about. One branch per
-- way, each found by its own index (0004, 0017), so no plan reads the whole trail backwards.
-- $3: only one store's (NULL: every store's), before the limit.
SELECT a.id, a.at, s.name AS store, c.key AS credential, a.person, a.action, a.request, a.records
FROM ((SELECT id FROM audit_log WHERE person = $1 AND ($3::bigint IS NULL OR store_id = $3)
       ORDER BY id DESC LIMIT $2)
      UNION (SELECT id FROM audit_log WHERE request ->> 'agent' = $1 AND ($3::bigint IS NULL OR store_id = $3)
             ORDER BY id DESC LIMIT $2)
      UNION (SELECT id FROM audit_log WHERE request -> 'persons' ? $1 AND ($3::bigint IS NULL OR store_id = $3)
             ORDER BY id DESC LIMIT $2)) found
JOIN audit_log a ON a.id = found.id
JOIN stores s ON s.id = a.store_id LEFT JOIN credentials c ON c.id = a.credential_id
ORDER BY a.id DESC LIMIT $2;
