-- Statement index and event log: the write path of the Statements resource and its queries.

-- name: lock_store_for_append
-- Take the store's exclusive append lock (a transaction advisory lock, held to commit) and wait
-- for the appends in flight (migration 0039).
SELECT spor_lock_store($1);

-- name: append_position_and_stored
-- After the append lock: the last position and this append's stored time (a millisecond after
-- the last one's at least, migration 0029).
SELECT last_position, spor_stored_after(last_stored) AS stored
FROM stores
WHERE id = $1;

-- name: reserve_ticket
-- The common append's positions, stored time and ticket, in a transaction of its own (0039).
SELECT ticket, first_position, stored, ended_ticket FROM spor_reserve_ticket($1, $2);

-- name: append_in_one_call
-- The common append with its ticket (migrations 0007, 0016, 0022, 0039, 0040, 0044): its stored
-- time (NULL when the general path must take it) and the store's definitions version before and
-- after its merge. $2-$6 per statement (lrs.store.statements.statement_columns): the ids joined
-- by commas; the bodies in UTF-8 joined by the byte 0x1E; whether to fill in the timestamp, a
-- t or f each; [attachment hashes comma-joined or null]; [authority key] (as text, not arrays:
-- the driver checks each element of an array it sends). $10: {id: definition}; $11: [[agent
-- key, name], ...]; $12-$15: the reservation; $16: the definitions version the definitions left
-- out were merged at (NULL: none left out); $17-$22: the filter terms as runs (0042,
-- lrs.store.statements.term_run_columns).
SELECT o_stored AS stored, o_defs_before AS defs_before, o_defs_after AS defs_after
FROM spor_append_group($1, string_to_array($2::text, ',')::uuid[], $3::bytea,
                       string_to_array($4::text, NULL)::boolean[],
                       ARRAY(SELECT e FROM jsonb_array_elements_text($5::jsonb) WITH ORDINALITY AS j(e, i) ORDER BY i),
                       ARRAY(SELECT e FROM jsonb_array_elements_text($6::jsonb) WITH ORDINALITY AS j(e, i) ORDER BY i),
                       $7::text[], $8::text[], $9::bytea[], $10::jsonb, $11::jsonb,
                       $12::bigint, $13::bigint, $14::timestamptz, $15::bigint, $16::bigint,
                       $17::text, $18::text, $19::text, $20::text, $21::text, $22::text);

-- name: release_tickets
-- Let go of a ticket its append did not (the call failed): the session's advisory locks.
SELECT pg_advisory_unlock_all();

-- name: settle_tickets
-- After a failed append ($2: its ticket let go), when no ticket is in flight that will end it
-- (a later one drawn since, or an earlier one still held: their commits pass the tickets let go
-- after them): mark it ended with spor_lock_store, which then waits for nothing (0039).
SELECT spor_lock_store($1)
FROM store_tickets t JOIN stores s ON s.id = t.id
WHERE t.id = $1 AND t.ticket = $2
  AND NOT EXISTS (SELECT 1 FROM generate_series(s.ended_ticket + 1, $2 - 1) AS j
                  WHERE NOT pg_try_advisory_xact_lock_shared(spor_ticket_key($1, j)));

-- name: append_statements
-- In one statement: log events, index rows, filter terms, voiding, attachments, counter.
WITH RECURSIVE
new_rows AS (
    SELECT * FROM unnest($2::bigint[], $4::uuid[], $5::json[], $6::uuid[], $7::uuid[],
                         $8::text[], $9::jsonb[], $10::text[], $11::boolean[])
        AS u(position, statement_id, body, voids, refers_to, sha2s, terms, authority_key, voided_in_batch)
),
ev AS (
    INSERT INTO events (store_id, position, kind, recorded_at, statement_id, payload, payload_bytes)
    SELECT $1, position, 'statement', $3, statement_id, body, octet_length(body::text) FROM new_rows
),
st AS (
    INSERT INTO statements (store_id, statement_id, position, stored, voided, voids, refers_to,
                            authority_key, attachment_sha2s, terms)
    SELECT $1, n.statement_id, n.position, $3,
           -- voided by a statement in this batch or by one stored earlier (found by append_check)
           n.voided_in_batch,
           n.voids, n.refers_to, n.authority_key,
           coalesce(string_to_array(n.sha2s, ','), '{}'), n.terms
    FROM new_rows n
),
new_terms AS (
    SELECT * FROM unnest($12::text[], $13::bigint[], $14::boolean[]) AS t(term, position, direct)
),
tm AS (
    -- one run a term: the positions are this append's, a fresh range (migration 0042)
    INSERT INTO statement_term_runs (store_id, term, first_position, last_position, offsets, direct)
    SELECT $1, term, first, max(position), array_agg((position - first)::integer ORDER BY position),
           array_agg(direct ORDER BY position)
    FROM (SELECT nt.*, min(nt.position) OVER (PARTITION BY nt.term) AS first FROM new_terms nt) x
    GROUP BY term, first
),
referrers (root, position, statement_id, depth) AS (
    -- statements stored earlier that target a statement arriving now (forward StatementRefs),
    -- up to lrs.ops.statements.MAX_REF_DEPTH hops
    SELECT s.refers_to, s.position, s.statement_id, 1
    FROM statements s
    WHERE s.store_id = $1 AND s.refers_to IN (SELECT statement_id FROM new_rows)
    UNION ALL
    SELECT r.root, s.position, s.statement_id, r.depth + 1
    FROM statements s JOIN referrers r ON s.store_id = $1 AND s.refers_to = r.statement_id
    WHERE r.depth < 32
),
forward AS (
    -- at the referrers' (older) positions, into the runs holding them (0042); run by the
    -- final statement, which reads it
    SELECT spor_terms_add($1, array_agg(nt.term), array_agg(r.position), array_agg(nt.direct)) AS done
    FROM referrers r
    JOIN new_rows n ON n.statement_id = r.root
    JOIN new_terms nt ON nt.position = n.position
),
voiding AS (
    -- by key ($19: the targets of this batch's voiding statements, usually none); a join on
    -- new_rows here was planned as a scan of the whole store. A referrer is voided by
    -- forward_own instead: a row that two UPDATEs of one statement change keeps only one change
    -- (PostgreSQL, "Data-Modifying Statements in WITH"), and a voiding was lost that way
    UPDATE statements SET voided = true
    WHERE store_id = $1 AND statement_id = ANY($19::uuid[]) AND voids IS NULL
      AND position NOT IN (SELECT position FROM referrers)
),
forward_own AS (
    -- and the referrers' recorded terms, so a statement that later targets a referrer
    -- inherits the complete set (terms hold a statement's effective terms); voided when this
    -- append voids it
    UPDATE statements s
    SET voided = s.voided OR (s.statement_id = ANY($19::uuid[]) AND s.voids IS NULL),
        terms = (
        SELECT jsonb_object_agg(u.term, u.direct)
        FROM (
            SELECT x.term, bool_or(x.direct) AS direct
            FROM (
                SELECT e.key AS term, (e.value)::text::boolean AS direct FROM jsonb_each(s.terms) e
                UNION ALL
                SELECT nt.term, nt.direct
                FROM new_rows n JOIN new_terms nt ON nt.position = n.position
                WHERE n.statement_id = r.root
            ) x
            GROUP BY x.term
        ) u
    )
    FROM (SELECT DISTINCT ON (position) root, position FROM referrers) r
    WHERE s.store_id = $1 AND s.position = r.position
),
att AS (
    INSERT INTO attachments (store_id, sha2, content_type, content)
    SELECT $1, sha2, content_type, content
    FROM unnest($15::text[], $16::text[], $17::bytea[]) AS a(sha2, content_type, content)
    ON CONFLICT (store_id, sha2) DO NOTHING
)
UPDATE stores SET last_position = $18, last_stored = $3
WHERE id = $1 AND (SELECT count(*) FROM forward) = 1;

-- name: statement_by_id
-- One statement of a store by id, with its stored time and voided flag, and its actor and its
-- object when that is an Agent or a Group (whom it is about, for the audit trail and a person's
-- own reads: the server need not parse a large statement for them). The json operators refuse a
-- value holding the escape \u0000 anywhere (extension values may: 0026): then no actor, and the
-- server reads both from the statement.
SELECT s.statement_id::text AS id, e.payload::text AS payload, s.stored, s.voided, s.attachment_sha2s, s.position,
       s.authority_key,
       CASE WHEN strpos(e.payload::text, '\u0000') = 0 THEN (e.payload -> 'actor')::text END AS actor,
       CASE WHEN strpos(e.payload::text, '\u0000') = 0 AND e.payload -> 'object' ->> 'objectType' IN ('Agent', 'Group')
            THEN (e.payload -> 'object')::text END AS agent_object
FROM statements s
JOIN events e ON e.store_id = s.store_id AND e.position = s.position
WHERE s.store_id = $1 AND s.statement_id = $2::uuid;

-- name: statements_agents_at
-- The actor (and the object, when an Agent or a Group) of the statements at some positions, as
-- JSON, for the audit trail's record of whom a query's page is about: read apart, so a large
-- statement is not parsed for them in the server (lrs.ops.statements.PARSED_FOR_PERSONS_MAX).
-- Each body is parsed once (into jsonb); NULL for both when it holds the escape \u0000, which
-- jsonb refuses (as statement_by_id: the server then reads both from the statement).
SELECT x.position, (x.j -> 'actor')::text AS actor,
       CASE WHEN x.j -> 'object' ->> 'objectType' IN ('Agent', 'Group') THEN (x.j -> 'object')::text END
           AS agent_object
FROM (SELECT e.position, CASE WHEN strpos(e.payload::text, '\u0000') = 0 THEN e.payload::jsonb END AS j
      FROM events e
      WHERE e.store_id = $1 AND e.position = ANY ($2::bigint[])
      OFFSET 0) x;  -- (not pulled up: j is computed once a row, not once a use)

-- name: store_horizon
-- The newest committed position (paging horizon) and the Consistent-Through time of a store.
-- When no append holds the store's lock, every append still to come will get a stored time
-- not before now, so now is consistent; otherwise the last committed stored time is. The row
-- is read after the lock is tried, in a snapshot of its own (migration 0028).
SELECT * FROM spor_store_horizon($1);

-- name: term_positions_desc
-- The positions of a page of a query by filter term, newest first: the driving term plus
-- optional others ($7/$9/$11, each with its "related" flag). The driving term's runs are walked
-- newest first (migration 0042: runs of one term never overlap, so their order is the
-- positions'); another term is checked in the one run that may hold the position. The rows at
-- them are read by statements_at, which also applies the statement filters.
SELECT u.p AS position
FROM statement_term_runs t
CROSS JOIN LATERAL (SELECT t.first_position + o.off AS p, o.d FROM unnest(t.offsets, t.direct) AS o(off, d)) u
WHERE t.store_id = $1 AND t.term_key = hashtextextended($2, 0) AND t.term = $2
  AND t.first_position <= least($4::bigint, coalesce($5::bigint - 1, $4::bigint))
  AND u.p <= $4 AND u.p < coalesce($5::bigint, 9223372036854775807) AND (u.d OR $3)
  AND ($7::text IS NULL OR EXISTS (
      SELECT 1 FROM (SELECT x.first_position, x.last_position, x.offsets, x.direct FROM statement_term_runs x
                     WHERE x.store_id = $1 AND x.term_key = hashtextextended($7, 0)
                       AND x.term = $7 AND x.first_position <= u.p
                     ORDER BY x.first_position DESC LIMIT 1) x
      WHERE CASE WHEN u.p <= x.last_position  -- (the offset then fits an integer)
                 THEN u.p - x.first_position = ANY (x.offsets)
                      AND (x.direct[array_position(x.offsets, (u.p - x.first_position)::integer)] OR $8)
                 ELSE false END))
  AND ($9::text IS NULL OR EXISTS (
      SELECT 1 FROM (SELECT x.first_position, x.last_position, x.offsets, x.direct FROM statement_term_runs x
                     WHERE x.store_id = $1 AND x.term_key = hashtextextended($9, 0)
                       AND x.term = $9 AND x.first_position <= u.p
                     ORDER BY x.first_position DESC LIMIT 1) x
      WHERE CASE WHEN u.p <= x.last_position  -- (the offset then fits an integer)
                 THEN u.p - x.first_position = ANY (x.offsets)
                      AND (x.direct[array_position(x.offsets, (u.p - x.first_position)::integer)] OR $10)
                 ELSE false END))
  AND ($11::text IS NULL OR EXISTS (
      SELECT 1 FROM (SELECT x.first_position, x.last_position, x.offsets, x.direct FROM statement_term_runs x
                     WHERE x.store_id = $1 AND x.term_key = hashtextextended($11, 0)
                       AND x.term = $11 AND x.first_position <= u.p
                     ORDER BY x.first_position DESC LIMIT 1) x
      WHERE CASE WHEN u.p <= x.last_position  -- (the offset then fits an integer)
                 THEN u.p - x.first_position = ANY (x.offsets)
                      AND (x.direct[array_position(x.offsets, (u.p - x.first_position)::integer)] OR $12)
                 ELSE false END))
ORDER BY t.first_position DESC, u.p DESC
LIMIT $6;

-- name: term_positions_asc
-- As term_positions_desc, oldest first: from the run that may hold the position after $5 on.
SELECT u.p AS position
FROM statement_term_runs t
CROSS JOIN LATERAL (SELECT t.first_position + o.off AS p, o.d FROM unnest(t.offsets, t.direct) AS o(off, d)) u
WHERE t.store_id = $1 AND t.term_key = hashtextextended($2, 0) AND t.term = $2
  AND t.first_position <= $4
  AND t.first_position >= coalesce((SELECT max(k.first_position) FROM statement_term_runs k
                                    WHERE k.store_id = $1 AND k.term_key = hashtextextended($2, 0)
                                      AND k.term = $2 AND k.first_position <= $5::bigint), 0)
  AND u.p <= $4 AND u.p > coalesce($5::bigint, 0) AND (u.d OR $3)
  AND ($7::text IS NULL OR EXISTS (
      SELECT 1 FROM (SELECT x.first_position, x.last_position, x.offsets, x.direct FROM statement_term_runs x
                     WHERE x.store_id = $1 AND x.term_key = hashtextextended($7, 0)
                       AND x.term = $7 AND x.first_position <= u.p
                     ORDER BY x.first_position DESC LIMIT 1) x
      WHERE CASE WHEN u.p <= x.last_position  -- (the offset then fits an integer)
                 THEN u.p - x.first_position = ANY (x.offsets)
                      AND (x.direct[array_position(x.offsets, (u.p - x.first_position)::integer)] OR $8)
                 ELSE false END))
  AND ($9::text IS NULL OR EXISTS (
      SELECT 1 FROM (SELECT x.first_position, x.last_position, x.offsets, x.direct FROM statement_term_runs x
                     WHERE x.store_id = $1 AND x.term_key = hashtextextended($9, 0)
                       AND x.term = $9 AND x.first_position <= u.p
                     ORDER BY x.first_position DESC LIMIT 1) x
      WHERE CASE WHEN u.p <= x.last_position  -- (the offset then fits an integer)
                 THEN u.p - x.first_position = ANY (x.offsets)
                      AND (x.direct[array_position(x.offsets, (u.p - x.first_position)::integer)] OR $10)
                 ELSE false END))
  AND ($11::text IS NULL OR EXISTS (
      SELECT 1 FROM (SELECT x.first_position, x.last_position, x.offsets, x.direct FROM statement_term_runs x
                     WHERE x.store_id = $1 AND x.term_key = hashtextextended($11, 0)
                       AND x.term = $11 AND x.first_position <= u.p
                     ORDER BY x.first_position DESC LIMIT 1) x
      WHERE CASE WHEN u.p <= x.last_position  -- (the offset then fits an integer)
                 THEN u.p - x.first_position = ANY (x.offsets)
                      AND (x.direct[array_position(x.offsets, (u.p - x.first_position)::integer)] OR $12)
                 ELSE false END))
ORDER BY t.first_position ASC, u.p ASC
LIMIT $6;

-- name: statements_at
-- The statements at some positions of a store, in no particular order, read with read-ahead
-- (migration 0024), each with whether the statement filters ($3 since, $4 until, $5 authority)
-- keep it and its size; the body (payload) only of those kept, and of those only while it and
-- the kept bodies before it in the order of $2 are within the byte budget $6 (0031; NULL: none),
-- the first's always unless the page has rows already ($7).
SELECT * FROM spor_statements_at($1, $2::bigint[], $3::timestamptz, $4::timestamptz, $5::text, $6::bigint,
                                 $7::boolean);

-- name: log_statements_at
-- As statements_at, from the event log and the voided index alone (migration 0025), for a page
-- that needs neither the attachment hashes nor the authority ($3 since, $4 until, $5 the byte
-- budget, $6 whether the page has rows already): rows carry neither.
SELECT * FROM spor_log_statements_at($1, $2::bigint[], $3::timestamptz, $4::timestamptz, $5::bigint, $6::boolean);

-- name: query_all_desc
-- All unvoided statements of a store in a stored-time window, newest first; the body of each only
-- while it and the bodies before it are within the byte budget $8, the first's always
-- (migration 0031; NULL: none).
SELECT p.id,
       CASE WHEN spor_page_takes(sum(p.bytes) OVER w - p.bytes, p.bytes, $8::bigint, false)
            THEN p.payload::text END AS payload,
       p.stored, p.voided, p.attachment_sha2s, p.position, p.authority_key
FROM (
    SELECT s.statement_id::text AS id, e.payload, coalesce(e.payload_bytes, octet_length(e.payload::text)) AS bytes,
           s.stored, s.voided, s.attachment_sha2s, s.position, s.authority_key
    FROM statements s
    JOIN events e ON e.store_id = s.store_id AND e.position = s.position
    WHERE s.store_id = $1 AND s.position <= $2 AND s.position < coalesce($3::bigint, 9223372036854775807)
      AND NOT s.voided
      AND ($4::timestamptz IS NULL OR s.stored > $4) AND ($5::timestamptz IS NULL OR s.stored <= $5)
      AND ($7::text IS NULL OR s.authority_key = $7)
    ORDER BY s.position DESC
    LIMIT $6
) p
WINDOW w AS (ORDER BY p.position DESC)
ORDER BY p.position DESC;

-- name: query_all_asc
-- All unvoided statements of a store in a stored-time window, oldest first; the body of each only
-- while it and the bodies before it are within the byte budget $8, the first's always
-- (migration 0031; NULL: none).
SELECT p.id,
       CASE WHEN spor_page_takes(sum(p.bytes) OVER w - p.bytes, p.bytes, $8::bigint, false)
            THEN p.payload::text END AS payload,
       p.stored, p.voided, p.attachment_sha2s, p.position, p.authority_key
FROM (
    SELECT s.statement_id::text AS id, e.payload, coalesce(e.payload_bytes, octet_length(e.payload::text)) AS bytes,
           s.stored, s.voided, s.attachment_sha2s, s.position, s.authority_key
    FROM statements s
    JOIN events e ON e.store_id = s.store_id AND e.position = s.position
    WHERE s.store_id = $1 AND s.position <= $2 AND s.position > coalesce($3::bigint, 0)
      AND NOT s.voided
      AND ($4::timestamptz IS NULL OR s.stored > $4) AND ($5::timestamptz IS NULL OR s.stored <= $5)
      AND ($7::text IS NULL OR s.authority_key = $7)
    ORDER BY s.position ASC
    LIMIT $6
) p
WINDOW w AS (ORDER BY p.position ASC)
ORDER BY p.position ASC;

-- name: chains_leaving_authority
-- Of the statements at some positions ($2), those whose StatementRef chain reaches a statement
-- not stored by the authority $3, or goes on past 32 of its own (a statement inherits its
-- target's recorded terms, which hold the whole chain's, so a chain written a statement at a
-- time has no depth limit: a review), each with the bodies of its chain's statements before
-- that one, the statement's own first (lrs/store/statements.py _matched_only_by_others). A
-- chain that ends at a target not stored is the authority's own. With $3 NULL (a person's
-- query, whose own statements the server tells by their bodies) every statement with a chain,
-- with the bodies of its whole chain (33 at most).
WITH RECURSIVE chain(root, member, refers_to, own, depth) AS (
    SELECT s.position, s.position, s.refers_to, true, 0
    FROM statements s
    WHERE s.store_id = $1 AND s.position = ANY($2::bigint[]) AND s.refers_to IS NOT NULL
  UNION ALL
    SELECT c.root, t.position, t.refers_to, $3::text IS NULL OR t.authority_key = $3, c.depth + 1
    FROM chain c
    JOIN statements t ON t.store_id = $1 AND t.statement_id = c.refers_to
    WHERE c.own AND c.refers_to IS NOT NULL AND c.depth < 32
)
SELECT c.root, array_agg(e.payload::text ORDER BY c.depth) FILTER (WHERE c.own) AS bodies
FROM chain c
JOIN events e ON e.store_id = $1 AND e.position = c.member
GROUP BY c.root
HAVING $3::text IS NULL OR bool_or(NOT c.own OR (c.depth >= 32 AND c.refers_to IS NOT NULL));

-- name: stored_at_or_before
-- The stored time of a store's newest statement at or before a position.
SELECT stored FROM statements WHERE store_id = $1 AND position <= $2 ORDER BY position DESC LIMIT 1;

-- name: attachment_sizes
-- The size of attachments' data by SHA-2 (octet_length of a bytea reads its header only).
SELECT sha2, octet_length(content) AS size FROM attachments WHERE store_id = $1 AND sha2 = ANY($2::text[]);

-- name: attachments_described
-- Attachments of a store by SHA-2 without their data: type and size (octet_length reads the header).
SELECT sha2, content_type, octet_length(content) AS size FROM attachments
WHERE store_id = $1 AND sha2 = ANY($2::text[]);

-- name: attachments_by_sha2
-- Attachment contents of a store by SHA-2.
SELECT sha2, content_type, content FROM attachments WHERE store_id = $1 AND sha2 = ANY($2::text[]);

-- name: advance_store_counter
-- Move a store's position counter and last stored time past an append (inside its transaction).
UPDATE stores SET last_position = $2, last_stored = $3 WHERE id = $1;

-- name: append_lock_scoped
-- Start of a group append: scope this transaction to the store and take its append lock
-- (waiting for the appends in flight, 0039).
SELECT set_config('spor.store_ids', $1::bigint::text, true),
       set_config('spor.write_store', $1::bigint::text, true),
       spor_lock_store($1);

-- name: append_check
-- Under the append lock: the counter, this append's stored time, which of the ids are stored
-- (with their statements, to compare a re-sent id), and the terms of StatementRef targets.
SELECT st.last_position, spor_stored_after(st.last_stored) AS stored,
       -- each id looked up on its own in the primary key. Before a growing store's first
       -- ANALYZE the planner thinks it holds a row or two and took the (store_id, position)
       -- index, scanning the whole store per id; ORDER BY statement_id makes the primary key
       -- the cheaper plan whatever the statistics say (LATERAL ... LIMIT is not flattened).
       -- json, not jsonb: a stored body may hold U+0000 in an extension value
       (SELECT coalesce(json_object_agg(f.id::text, f.payload), '{}'::json)
          FROM unnest($2::uuid[]) AS i(id)
          CROSS JOIN LATERAL (
              SELECT s.statement_id AS id, e.payload
              FROM statements s JOIN events e ON e.store_id = s.store_id AND e.position = s.position
              WHERE s.store_id = $1 AND s.statement_id = i.id
              ORDER BY s.statement_id LIMIT 1) f) AS existing,
       -- the StatementRef targets ($3) that are stored, and the stored statements they target in
       -- turn, up to lrs.ops.statements.MAX_REF_DEPTH hops (a stored target's own target may
       -- arrive in this very append, and its terms are not in the target's yet):
       -- {id: [terms, refers_to, authority_key, body]} (the authority: whether a voiding may void
       -- it; the body as stored when the terms are NULL, its own: lrs.store.statements.recorded_terms).
       -- json, as above.
       (WITH RECURSIVE along (statement_id, position, terms, refers_to, authority_key, depth) AS (
            SELECT t.statement_id, t.position, t.terms, t.refers_to, t.authority_key, 1
              FROM statements t
             WHERE t.store_id = $1 AND t.statement_id = ANY($3::uuid[])
            UNION ALL
            SELECT t.statement_id, t.position, t.terms, t.refers_to, t.authority_key, a.depth + 1
              FROM along a JOIN statements t ON t.store_id = $1 AND t.statement_id = a.refers_to
             WHERE a.depth < 32)
        SELECT coalesce(json_object_agg(x.statement_id::text,
                                        json_build_array(x.terms, x.refers_to, x.authority_key,
                                                         CASE WHEN x.terms IS NULL THEN
                                                             (SELECT e.payload FROM events e
                                                              WHERE e.store_id = $1 AND e.position = x.position)
                                                         END)), '{}'::json)
          FROM (SELECT DISTINCT ON (statement_id) statement_id, position, terms, refers_to, authority_key
                FROM along) x)
       AS targets,
       (SELECT coalesce(array_agg(DISTINCT v.refers_to::text), '{}')
          FROM statements v
         WHERE v.store_id = $1 AND v.refers_to = ANY($2::uuid[]) AND v.voids IS NOT NULL) AS voided_before
FROM stores st WHERE st.id = $1;
