-- Asynchronous projections (projections/): the runner, the fact tables of the read models,
-- reference-data appends and the analyst queries. Queries named rm_* use unqualified table
-- names: the runner puts the target read-model schema first on the search_path (the live one,
-- or the fresh one of a rebuild). See docs/projections.md.

-- name: projection_stores
-- Every store with its newest position (the runner's work list and the lag baseline).
SELECT id, name, last_position FROM stores ORDER BY id;

-- name: projection_events_between
-- How many events a store's log holds after position $2 up to $3, counted up to $4 (positions
-- are not events: an erasure and an append that failed after its positions were reserved leave
-- gaps, migrations 0037 and 0039). An index-only scan of events_pkey.
SELECT count(*) FROM (SELECT 1 FROM events WHERE store_id = $1 AND position > $2 AND position <= $3 LIMIT $4) e;

-- name: projection_lease_acquire
-- Take or renew the lease of a (projection, store); returns a row only if the caller holds it.
INSERT INTO projections.leases (projection, store_id, owner, expires_at)
VALUES ($1, $2, $3, now() + make_interval(secs => $4))
ON CONFLICT (projection, store_id) DO UPDATE SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at
WHERE projections.leases.owner = EXCLUDED.owner OR projections.leases.expires_at < now()
RETURNING owner;

-- name: projection_lease_release
-- Give up every lease of a worker (clean shutdown), so others need not wait for expiry.
DELETE FROM projections.leases WHERE owner = $1;

-- name: projection_leases
-- The current leases, for status.
SELECT projection, store_id, owner, expires_at, expires_at > now() AS live FROM projections.leases;

-- name: rm_checkpoint_ensure
-- Make sure a store has a checkpoint row in the read model on the search_path.
INSERT INTO checkpoint (store_id) VALUES ($1) ON CONFLICT (store_id) DO NOTHING;

-- name: rm_checkpoint_lock
-- Lock the store's checkpoint for this apply transaction: the fence that makes application exactly-once.
SELECT position, failed_position FROM checkpoint WHERE store_id = $1 FOR UPDATE;

-- name: rm_checkpoint_advance
-- Move the checkpoint past the batch just applied (same transaction as its rows).
UPDATE checkpoint SET position = $2, updated_at = now() WHERE store_id = $1;

-- name: rm_checkpoint_fail
-- Mark the read model failed for a store at the event it could not apply.
UPDATE checkpoint SET failed_position = $2, error = $3, failed_at = now() WHERE store_id = $1;

-- name: rm_checkpoint_clear_failure
-- Clear a recorded failure so the runner tries the event again.
UPDATE checkpoint SET failed_position = NULL, error = NULL, failed_at = NULL WHERE store_id = ANY($1::bigint[]);

-- name: rm_checkpoints
-- All checkpoints of the read model on the search_path.
SELECT store_id, position, updated_at, failed_position, error, failed_at FROM checkpoint;

-- name: projection_event_time
-- The recorded time of the oldest unapplied event, at or after $2 (for lag in seconds; an
-- erasure leaves gaps in the positions, migration 0037).
SELECT recorded_at FROM events WHERE store_id = $1 AND position >= $2 ORDER BY position LIMIT 1;

-- name: rm_links_upsert
-- Link identifiers (IFI keys) to people; the newest link of an identifier wins.
INSERT INTO links (store_id, ifi, person_id)
SELECT $1, ifi, person_id FROM unnest($2::text[], $3::text[]) AS u(ifi, person_id)
ON CONFLICT (store_id, ifi) DO UPDATE SET person_id = EXCLUDED.person_id;

-- name: rm_links_persons
-- The people some identifiers are linked to now (before a batch relinks them).
SELECT DISTINCT person_id FROM links WHERE store_id = $1 AND ifi = ANY($2::text[]);

-- name: rm_links_delete
-- Unlink identifiers.
DELETE FROM links WHERE store_id = $1 AND ifi = ANY($2::text[]);

-- name: rm_units_upsert
-- Versions of org units (a version holds from valid_from until the unit's next version).
INSERT INTO units (store_id, unit_id, valid_from, id_kind, name, parent_id, level, closed)
SELECT $1, * FROM unnest($2::text[], $3::date[], $4::text[], $5::text[], $6::text[], $7::text[], $8::boolean[])
ON CONFLICT (store_id, unit_id, valid_from) DO UPDATE
SET id_kind = EXCLUDED.id_kind, name = EXCLUDED.name, parent_id = EXCLUDED.parent_id, level = EXCLUDED.level,
    closed = EXCLUDED.closed;

-- name: rm_employments_upsert
-- Employments of people in units, with role and profession, effective-dated.
INSERT INTO employments (store_id, person_id, employment_id, unit_id, role, profession, valid_from, valid_to)
SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::date[], $8::date[])
ON CONFLICT (store_id, person_id, employment_id) DO UPDATE
SET unit_id = EXCLUDED.unit_id, role = EXCLUDED.role, profession = EXCLUDED.profession,
    valid_from = EXCLUDED.valid_from, valid_to = EXCLUDED.valid_to;

-- name: rm_requirements_upsert
-- Requirements: satisfying activities, whom they apply to, validity; the newest definition wins.
INSERT INTO requirements (store_id, requirement_id, name, activity_ids, units, roles, professions, validity_days)
SELECT $1, rid, name,
       ARRAY(SELECT jsonb_array_elements_text(acts)), ARRAY(SELECT jsonb_array_elements_text(us)),
       ARRAY(SELECT jsonb_array_elements_text(rs)), ARRAY(SELECT jsonb_array_elements_text(ps)), days
FROM unnest($2::text[], $3::text[], $4::jsonb[], $5::jsonb[], $6::jsonb[], $7::jsonb[], $8::int[])
    AS u(rid, name, acts, us, rs, ps, days)
ON CONFLICT (store_id, requirement_id) DO UPDATE
SET name = EXCLUDED.name, activity_ids = EXCLUDED.activity_ids, units = EXCLUDED.units, roles = EXCLUDED.roles,
    professions = EXCLUDED.professions, validity_days = EXCLUDED.validity_days;

-- name: rm_rebuild_deferred_indexes
-- The indexes a rebuild builds once, after the rows are in (a sort), instead of row by row:
-- every non-unique index of the read-model schema $1, and the primary keys of its statement-fact
-- tables $2 (filled by plain inserts until then). Per index: its table, how to drop it and how
-- to make it again.
SELECT t.relname::text AS table_name, format('DROP INDEX %I.%I', $1::text, c.relname) AS drop_sql,
       pg_get_indexdef(i.indexrelid) AS create_sql
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
WHERE c.relnamespace = $1::regnamespace AND NOT i.indisunique
UNION ALL
SELECT t.relname::text, format('ALTER TABLE %I.%I DROP CONSTRAINT %I', $1::text, t.relname, k.conname),
       format('ALTER TABLE %I.%I ADD CONSTRAINT %I %s', $1::text, t.relname, k.conname, pg_get_constraintdef(k.oid))
FROM pg_constraint k JOIN pg_class t ON t.oid = k.conrelid
WHERE t.relnamespace = $1::regnamespace AND k.contype = 'p' AND t.relname = ANY($2::text[])
ORDER BY 1, 2;

-- name: projection_batch_end
-- The last position of the next batch of a store's log (at most $3 events after $2), and how many.
SELECT max(position) AS upto, count(*) AS n
FROM (SELECT position FROM events WHERE store_id = $1 AND position > $2 ORDER BY position LIMIT $3) b;

-- name: projection_reference_events
-- The reference-data events of the kinds $4 (those a read model folds) of a store in
-- (after, upto], in order.
SELECT store_id, position, kind, recorded_at, statement_id::text AS statement_id, payload
FROM events WHERE store_id = $1 AND position > $2 AND position <= $3 AND kind <> 'statement'
  AND kind = ANY($4::text[])
ORDER BY position;

-- name: prefill_facts
-- A rebuild's bulk pass over the statements of a store's positions (after, upto]: their facts,
-- extracted once (each payload parsed once), into the fact tables of every read model being
-- rebuilt: one data-modifying CTE per table, each from the prefill_* entries below with
-- {schema} set to a build schema. The statements' count.
WITH f AS MATERIALIZED (SELECT * FROM projections.statement_facts($1, $2, $3))
{inserts}
SELECT count(*) FROM f;

-- name: prefill_completions
-- (prefill_facts) As rm_completions_from_log, without the voided check: the bulk pass removes
-- the voided facts once at the end (remove_voided).
INSERT INTO {schema}.completions (store_id, statement_id, ifi, activity_id, verb, success, score, duration_s,
                                  completed_at, position)
SELECT $1, f.statement_id, f.ifi, f.activity_id, f.verb, f.success, f.score, f.duration_s, f.at, f.position
FROM f
WHERE f.voids IS NULL AND f.activity_id IS NOT NULL
  AND f.verb IN ('http://adlnet.gov/expapi/verbs/completed', 'http://adlnet.gov/expapi/verbs/passed',
                 'https://w3id.org/xapi/adl/verbs/satisfied', 'https://w3id.org/xapi/adl/verbs/waived')

-- name: prefill_activity
-- (prefill_facts) As rm_activity_from_log, without the voided check (see prefill_completions).
INSERT INTO {schema}.activity_facts (store_id, statement_id, course_id, activity_id, ifi, verb, success, score,
                                     duration_s, at, position)
SELECT $1, f.statement_id, c.course, coalesce(f.activity_id, c.course), f.ifi, f.verb, f.success, f.score,
       f.duration_s, f.at, f.position
FROM f CROSS JOIN LATERAL unnest(f.courses) AS c(course)
WHERE f.voids IS NULL

-- name: prefill_voided
-- (prefill_facts) The statements voided by voiding statements, as rm_voided_insert.
INSERT INTO {schema}.voided (store_id, statement_id)
SELECT DISTINCT $1::bigint, f.voids FROM f WHERE f.voids IS NOT NULL
ON CONFLICT DO NOTHING

-- name: rm_completions_from_log
-- Completed/passed statements (and cmi5's satisfied and waived, projections.facts.COMPLETION_VERBS)
-- of (after, upto] with an Activity object, unless voided already; the (identifier, activity)
-- pairs added.
WITH added AS (
    INSERT INTO completions (store_id, statement_id, ifi, activity_id, verb, success, score, duration_s,
                             completed_at, position)
    SELECT $1, f.statement_id, f.ifi, f.activity_id, f.verb, f.success, f.score, f.duration_s, f.at, f.position
    FROM projections.statement_facts($1, $2, $3) f
    WHERE f.voids IS NULL AND f.activity_id IS NOT NULL
      AND f.verb IN ('http://adlnet.gov/expapi/verbs/completed', 'http://adlnet.gov/expapi/verbs/passed',
                     'https://w3id.org/xapi/adl/verbs/satisfied', 'https://w3id.org/xapi/adl/verbs/waived')
      AND NOT EXISTS (SELECT 1 FROM voided v WHERE v.store_id = $1 AND v.statement_id = f.statement_id)
    -- (no conflict target: while a rebuild's bulk fold runs the table has no primary key yet)
    ON CONFLICT DO NOTHING
    RETURNING ifi, activity_id
)
SELECT DISTINCT ifi, activity_id FROM added;

-- name: rm_activity_from_log
-- Course facts of the statements of (after, upto]: one row per course, unless voided already.
INSERT INTO activity_facts (store_id, statement_id, course_id, activity_id, ifi, verb, success, score, duration_s,
                            at, position)
SELECT $1, f.statement_id, c.course, coalesce(f.activity_id, c.course), f.ifi, f.verb, f.success, f.score,
       f.duration_s, f.at, f.position
-- (OFFSET 0: the facts are computed once per statement, not once per course row)
FROM (SELECT * FROM projections.statement_facts($1, $2, $3) OFFSET 0) f
CROSS JOIN LATERAL unnest(f.courses) AS c(course)
WHERE f.voids IS NULL
  AND NOT EXISTS (SELECT 1 FROM voided v WHERE v.store_id = $1 AND v.statement_id = f.statement_id)
ON CONFLICT DO NOTHING;  -- (no target: see rm_completions_from_log)

-- name: rm_voids_in_log
-- The statements voided by voiding statements of (after, upto]. Payloads are written by Spor
-- (orjson escapes no letter), so a voiding statement's text contains the verb's last segment;
-- the LIKE spares parsing every other payload.
SELECT DISTINCT f.voids::text AS voids
FROM projections.statement_facts($1, $2, $3, '%voided%') f
WHERE f.voids IS NOT NULL;

-- name: rm_voided_insert
-- Remember voided statement ids (so a target arriving later is never counted).
INSERT INTO voided (store_id, statement_id) SELECT $1, unnest($2::uuid[]) ON CONFLICT DO NOTHING;

-- name: rm_completions_void
-- Remove voided statements from the completions; the (identifier, activity) pairs removed.
DELETE FROM completions WHERE store_id = $1 AND statement_id = ANY($2::uuid[]) RETURNING ifi, activity_id;

-- name: rm_activity_void
-- Remove voided statements from the course facts.
DELETE FROM activity_facts WHERE store_id = $1 AND statement_id = ANY($2::uuid[]);

-- name: rm_completions_void_all
-- Remove every voided statement from the completions (a rebuild's bulk fold defers the deletes).
DELETE FROM completions c USING voided v WHERE c.store_id = v.store_id AND c.statement_id = v.statement_id;

-- name: rm_activity_void_all
-- Remove every voided statement from the course facts (as rm_completions_void_all).
DELETE FROM activity_facts f USING voided v WHERE f.store_id = v.store_id AND f.statement_id = v.statement_id;

-- name: rm_status_meta
-- The date and time zone a store's compliance status rows are computed for (none: not yet).
SELECT as_of, tz FROM status_meta WHERE store_id = $1;

-- name: rm_status_today
-- Today in the reporting time zone.
SELECT (now() AT TIME ZONE $1::text)::date;

-- name: rm_status_compute
-- Compute a store's compliance status rows and counts from scratch as of a date.
SELECT projections.compliance_status_compute($1, $2::date, $3::text);

-- name: rm_status_reset
-- (Computing in parts, migration 0021) remove a store's status rows and counts; set its date.
SELECT projections.compliance_status_reset($1, $2::date, $3::text);

-- name: rm_status_people
-- (Computing in parts) the people of a store who may be due something: those employed.
SELECT DISTINCT person_id FROM employments WHERE store_id = $1 ORDER BY person_id;

-- name: rm_status_add
-- (Computing in parts) the status rows of the people named, their units and counts added.
SELECT projections.compliance_status_add($1, $2::date, $3::text, $4::text[]);

-- name: rm_status_finish
-- (Computing in parts) fold the counts into the summary, note the latest completion.
SELECT projections.compliance_status_finish($1);

-- name: rm_status_refresh
-- Recompute the status rows of the people a window touched: those whose identifiers gained or
-- lost a completion of an activity some requirement counts ($2, $3: identifier and activity
-- pairs), and those named ($4). Nothing while the store has no rows (a rebuild computes them
-- at the end), without collecting the people first.
SELECT projections.compliance_status_refresh($1, ARRAY(
    SELECT coalesce(l.person_id, c.ifi)
    FROM unnest($2::text[], $3::text[]) AS c(ifi, activity_id)
    LEFT JOIN links l ON l.store_id = $1 AND l.ifi = c.ifi
    WHERE EXISTS (SELECT 1 FROM requirements r WHERE r.store_id = $1 AND c.activity_id = ANY(r.activity_ids))
    UNION
    SELECT unnest($4::text[])))
WHERE EXISTS (SELECT 1 FROM status_meta m WHERE m.store_id = $1);

-- name: rm_status_dates_differ
-- Whether an employment or unit version takes effect between two dates (after one, by the other).
SELECT projections.compliance_dates_differ($1, $2::date, $3::date);

-- name: rm_status_move_to
-- The status rows hold for a later date too (nothing took effect in between).
UPDATE status_meta SET as_of = $2 WHERE store_id = $1;

-- name: reference_lock_and_digests
-- Current digests of reference-data keys (kind = key family) of a store, read under its append lock.
SELECT kind, key, digest FROM projections.reference_keys
WHERE store_id = $1 AND kind = ANY($2::text[]) AND key = ANY($3::text[]);

-- name: reference_payloads
-- The newest payload of each reference-data key of one family (kind) of a store, as text.
SELECT k.key, e.payload::text AS payload
FROM projections.reference_keys k
JOIN events e ON e.store_id = k.store_id AND e.position = k.position
WHERE k.store_id = $1 AND k.kind = $2;

-- name: reference_unit_ids
-- Which of the given unit ids have a version in the store's organisation tree.
SELECT DISTINCT split_part(k.key, '@', 1) AS unit_id
FROM projections.reference_keys k
WHERE k.store_id = $1 AND k.kind = 'org.unit' AND split_part(k.key, '@', 1) = ANY ($2::text[]);

-- name: reference_links
-- The newest link or unlink of each of the given identifiers (IFI keys), with its person.
SELECT k.key, e.kind, e.payload->>'person_id' AS person_id
FROM projections.reference_keys k
JOIN events e ON e.store_id = k.store_id AND e.position = k.position
WHERE k.store_id = $1 AND k.kind = 'person.link' AND k.key = ANY ($2::text[]);

-- name: reference_append
-- Append reference-data events and record their digests (one statement, inside the append lock).
WITH new_rows AS (
    SELECT * FROM unnest($2::bigint[], $4::text[], $5::text[], $6::text[], $7::bytea[], $8::jsonb[])
        AS u(position, kind, family, key, digest, payload)
),
ev AS (
    INSERT INTO events (store_id, position, kind, recorded_at, statement_id, payload)
    SELECT $1, position, kind, $3, NULL, payload FROM new_rows
)
INSERT INTO projections.reference_keys (store_id, kind, key, digest, position)
SELECT $1, family, key, digest, position FROM new_rows
ON CONFLICT (store_id, kind, key) DO UPDATE SET digest = EXCLUDED.digest, position = EXCLUDED.position;

-- name: projection_notify
-- Wake projection workers: events were appended to a store (a hint; workers also poll).
SELECT pg_notify('spor_events', $1::text);

-- name: projection_store_by_name
-- A store's id by name (import and CLI).
SELECT id FROM stores WHERE name = $1;

-- name: api_transcript
-- A person's transcript: completions and passes (and cmi5 satisfied or waived) of every linked
-- identifier, with the day each stops counting as compliance has it ($6: the reporting time
-- zone): the completion's date there plus the longest validity of the requirements the
-- activity satisfies; none when one of them never expires, and none for a failed attempt
-- (compliance counts no completion with success false).
SELECT c.store_id, st.name AS store, c.statement_id::text AS statement_id, c.activity_id, c.verb, c.success,
       c.score, c.duration_s, c.completed_at,
       CASE WHEN c.success IS DISTINCT FROM false AND NOT v.never
            THEN (c.completed_at AT TIME ZONE $6::text)::date + v.days END AS expires_on
FROM rm_transcript.completions c
JOIN stores st ON st.id = c.store_id
LEFT JOIN rm_transcript.links l ON l.store_id = c.store_id AND l.ifi = c.ifi
LEFT JOIN LATERAL (
    SELECT max(r.validity_days) AS days, bool_or(r.validity_days IS NULL) AS never
    FROM rm_transcript.requirements r
    WHERE r.store_id = c.store_id AND c.activity_id = ANY(r.activity_ids)) v ON true
WHERE c.store_id = ANY($1::bigint[])
  AND (c.ifi IN (SELECT x.ifi FROM rm_transcript.links x WHERE x.store_id = c.store_id AND x.person_id = $2)
       OR (c.ifi = $2 AND l.person_id IS NULL))
  AND ($3::text IS NULL OR c.activity_id = $3)
ORDER BY c.completed_at, c.store_id, c.statement_id
LIMIT $4 OFFSET $5;

-- name: api_course_status
-- Per course: learners registered/started/completed/passed/failed, averages, and where learners stop.
WITH RECURSIVE uv AS (
    SELECT DISTINCT ON (store_id, unit_id) store_id, unit_id, parent_id, level
    FROM rm_course_status.units WHERE store_id = ANY($1::bigint[]) AND valid_from <= $3
    ORDER BY store_id, unit_id, valid_from DESC
),
anc (store_id, unit_id, ancestor_id, level, depth) AS (
    SELECT store_id, unit_id, unit_id, level, 0 FROM uv
    UNION ALL
    SELECT a.store_id, a.unit_id, p.unit_id, p.level, a.depth + 1
    FROM anc a JOIN uv c ON c.store_id = a.store_id AND c.unit_id = a.ancestor_id
    JOIN uv p ON p.store_id = c.store_id AND p.unit_id = c.parent_id
    WHERE a.depth < 32
),
f AS (
    SELECT a.store_id, a.course_id, coalesce(l.person_id, a.ifi) AS person, a.verb, a.activity_id, a.score,
           a.duration_s, a.at, a.position
    FROM rm_course_status.activity_facts a
    LEFT JOIN rm_course_status.links l ON l.store_id = a.store_id AND l.ifi = a.ifi
    WHERE a.store_id = ANY($1::bigint[]) AND ($2::text IS NULL OR a.course_id = $2)
),
unit_trust AS (
    -- each unit's trust: its nearest ancestor of that level
    SELECT DISTINCT ON (a.store_id, a.unit_id) a.store_id, a.unit_id, a.ancestor_id AS trust_id
    FROM anc a WHERE a.level = 'trust' AND $4::text[] && ARRAY['unit', 'trust']
    ORDER BY a.store_id, a.unit_id, a.depth
),
emp AS (
    -- each learner's units in effect at $3, with the trust of each (when units or trusts are asked)
    SELECT DISTINCT f.store_id, f.person, e.unit_id, t.trust_id
    FROM (SELECT DISTINCT store_id, person FROM f) f
    LEFT JOIN rm_course_status.employments e
        ON $4::text[] && ARRAY['unit', 'trust'] AND e.store_id = f.store_id AND e.person_id = f.person
       AND e.valid_from <= $3 AND (e.valid_to IS NULL OR e.valid_to > $3)
    LEFT JOIN unit_trust t ON t.store_id = e.store_id AND t.unit_id = e.unit_id
),
grp AS (
    -- the group(s) of each learner per level asked ($4): the course (no group), units, trusts; one
    -- row per learner and group (a unit has one trust)
    SELECT DISTINCT e.store_id, e.person, l.level, l.group_id, l.parent_id
    FROM emp e
    CROSS JOIN LATERAL (VALUES ('course', NULL, NULL), ('unit', e.unit_id, e.trust_id), ('trust', e.trust_id, NULL))
        AS l(level, group_id, parent_id)
    WHERE l.level = ANY($4::text[])
),
learners AS (
    SELECT f.store_id, f.course_id, f.person,
           bool_or(f.verb = 'http://adlnet.gov/expapi/verbs/registered') AS registered,
           bool_or(f.verb <> 'http://adlnet.gov/expapi/verbs/registered') AS started,
           -- the course's own result: a module completed (the course its parent or grouping)
           -- does not complete the course, and its learner may still stop in it. A cmi5 course is
           -- completed when the LMS says its moveOn criteria are met (satisfied): its AUs'
           -- statements name the AUs. Failed counts a learner who never passed: one who failed
           -- and then passed is among those who passed only
           bool_or(f.verb IN ('http://adlnet.gov/expapi/verbs/completed', 'https://w3id.org/xapi/adl/verbs/satisfied')
                   AND f.activity_id = f.course_id) AS completed,
           bool_or(f.verb = 'http://adlnet.gov/expapi/verbs/passed' AND f.activity_id = f.course_id) AS passed,
           bool_or(f.verb = 'http://adlnet.gov/expapi/verbs/failed' AND f.activity_id = f.course_id)
               AND NOT bool_or(f.verb = 'http://adlnet.gov/expapi/verbs/passed' AND f.activity_id = f.course_id)
               AS failed,
           -- a learner whose AU the LMS waived (cmi5) has not stopped in it
           bool_or(f.verb = 'https://w3id.org/xapi/adl/verbs/waived' AND f.activity_id = f.course_id) AS waived,
           (array_agg(f.activity_id ORDER BY f.at DESC, f.position DESC))[1] AS last_activity
    FROM f GROUP BY f.store_id, f.course_id, f.person
),
per_learner AS (
    SELECT g.level, g.group_id, g.parent_id, l.*
    FROM learners l JOIN grp g ON g.store_id = l.store_id AND g.person = l.person
),
learner_results AS (
    -- each learner's latest result of the course itself: the score of a completion, pass or
    -- fail, the time of a completion or pass. Averaged per learner, not per statement: one
    -- learner's forty attempts made a group's average theirs (a privacy audit)
    SELECT f.store_id, f.course_id, f.person,
           (array_agg(f.score ORDER BY f.at DESC, f.position DESC) FILTER (
               WHERE f.score IS NOT NULL AND f.activity_id = f.course_id AND f.verb IN (
                   'http://adlnet.gov/expapi/verbs/completed', 'http://adlnet.gov/expapi/verbs/passed',
                   'http://adlnet.gov/expapi/verbs/failed')))[1] AS score,
           (array_agg(f.duration_s ORDER BY f.at DESC, f.position DESC) FILTER (
               WHERE f.duration_s IS NOT NULL AND f.activity_id = f.course_id AND f.verb IN (
                   'http://adlnet.gov/expapi/verbs/completed', 'http://adlnet.gov/expapi/verbs/passed')))[1]
               AS duration_s
    FROM f GROUP BY f.store_id, f.course_id, f.person
),
scores AS (
    -- and how many learners each average is over, for suppression (never shown)
    SELECT g.level, g.group_id, r.store_id, r.course_id,
           avg(r.score) AS avg_score, avg(r.duration_s) AS avg_duration_s,
           count(r.score) AS scored, count(r.duration_s) AS timed
    FROM learner_results r JOIN grp g ON g.store_id = r.store_id AND g.person = r.person
    GROUP BY g.level, g.group_id, r.store_id, r.course_id
),
stops AS (
    SELECT level, group_id, store_id, course_id, jsonb_object_agg(last_activity, n) AS stopped_at
    FROM (SELECT level, group_id, store_id, course_id, last_activity, count(*) AS n FROM per_learner
          WHERE NOT (completed OR passed OR waived) GROUP BY 1, 2, 3, 4, 5) s
    GROUP BY 1, 2, 3, 4
)
-- parent_id: a unit's trust (none: the learners with no trust), for small-group suppression
SELECT p.level, p.store_id, p.course_id, p.group_id, p.parent_id, count(*) AS learners,
       count(*) FILTER (WHERE p.registered) AS registered, count(*) FILTER (WHERE p.started) AS started,
       count(*) FILTER (WHERE p.completed) AS completed, count(*) FILTER (WHERE p.passed) AS passed,
       count(*) FILTER (WHERE p.failed) AS failed,
       s.avg_score, s.avg_duration_s, s.scored, s.timed, coalesce(x.stopped_at, '{}'::jsonb) AS stopped_at
FROM per_learner p
JOIN scores s ON s.level = p.level AND s.store_id = p.store_id AND s.course_id = p.course_id
             AND s.group_id IS NOT DISTINCT FROM p.group_id
LEFT JOIN stops x ON x.level = p.level AND x.store_id = p.store_id AND x.course_id = p.course_id
                 AND x.group_id IS NOT DISTINCT FROM p.group_id
GROUP BY p.level, p.store_id, p.course_id, p.group_id, p.parent_id, s.avg_score, s.avg_duration_s, s.scored, s.timed,
         x.stopped_at
ORDER BY p.level, p.store_id, p.course_id, p.group_id NULLS FIRST
LIMIT $5 OFFSET $6;

-- name: api_compliance_status_answers
-- Whether the compliance status rows answer for these stores as of the date in the time zone
-- (migration 0010); otherwise the queries below compute from the fact tables.
SELECT projections.compliance_status_answers($1::bigint[], $2::date, $3::text);

-- name: api_compliance_status_units
-- A unit and the units below it in the tree the status rows were computed with.
SELECT $2::text UNION
SELECT u.unit_id FROM rm_compliance.status_units u WHERE u.store_id = ANY($1::bigint[]) AND $2 = ANY(u.ancestors);

-- name: api_compliance_from_status
-- api_compliance (below), read from the status rows: the same columns and order.
SELECT s.store_id, s.person_id, s.unit_id, s.requirement_id, s.last_completed,
       CASE WHEN isfinite(s.expires_on) THEN s.expires_on END AS expires_on, x.status
FROM rm_compliance.status s
CROSS JOIN LATERAL (SELECT CASE WHEN s.expires_on = '-infinity' THEN 'missing'
                                WHEN s.expires_on <= $2::date THEN 'expired'
                                WHEN s.expires_on <= $2::date + $3::int THEN 'expiring'
                                ELSE 'valid' END AS status) x
WHERE s.store_id = ANY($1::bigint[])
  AND ($4::text IS NULL OR s.requirement_id = $4)
  -- these units only (api_compliance_status_units), NULL: all
  AND ($5::text[] IS NULL OR s.unit_id = ANY($5::text[]))
  AND ($6::text IS NULL OR s.person_id = $6)
  AND ($7::text IS NULL OR x.status = $7)
  -- after this row (the cursor of the page before; NULL: from the start)
  AND ($10::bigint IS NULL OR (s.store_id, s.unit_id, s.person_id, s.requirement_id) > ($10, $11::text, $12::text, $13::text))
ORDER BY s.store_id, s.unit_id, s.person_id, s.requirement_id
LIMIT $8 OFFSET $9;

-- name: api_compliance_rollup_from_status
-- api_compliance_rollup (below), from the status summary (per row: how many people expire on or
-- before the date and by the end of the window, found by binary search in its sorted dates)
-- plus the changes not folded into it yet; the same columns and order.
WITH parts AS (
    SELECT s.level, s.group_id, s.requirement_id, s.total, s.missing,
           s.below[width_bucket($2::date + $3::int, s.dates)] AS by_window_end,
           s.below[width_bucket($2::date, s.dates)] AS by_date
    FROM rm_compliance.status_summary s
    WHERE s.store_id = ANY($1::bigint[]) AND s.level = ANY($5::text[]) AND ($4::text IS NULL OR s.requirement_id = $4)
    UNION ALL
    SELECT p.level, p.group_id, p.requirement_id, p.n,
           CASE WHEN p.expires_on = '-infinity' THEN p.n ELSE 0 END,
           CASE WHEN p.expires_on > '-infinity' AND p.expires_on <= $2::date + $3::int THEN p.n ELSE 0 END,
           CASE WHEN p.expires_on > '-infinity' AND p.expires_on <= $2::date THEN p.n ELSE 0 END
    FROM rm_compliance.status_pending p
    WHERE p.store_id = ANY($1::bigint[]) AND p.level = ANY($5::text[]) AND ($4::text IS NULL OR p.requirement_id = $4)
)
SELECT x.level, nullif(x.group_id, '') AS group_id, x.requirement_id, sum(x.total) AS total,
       sum(x.total - x.missing - x.by_window_end) AS valid, sum(x.by_window_end - x.by_date) AS expiring,
       sum(x.by_date) AS expired, sum(x.missing) AS missing
FROM parts x
GROUP BY x.level, x.group_id, x.requirement_id
HAVING sum(x.total) > 0
UNION ALL
-- level 'rest': per region, its people in no trust (only the total; migration 0018's index)
SELECT 'rest', s.region_id, s.requirement_id, count(DISTINCT (s.store_id, s.person_id)), NULL, NULL, NULL, NULL
FROM rm_compliance.status s
WHERE 'rest' = ANY($5::text[]) AND s.store_id = ANY($1::bigint[]) AND s.trust_id IS NULL
  AND ($4::text IS NULL OR s.requirement_id = $4)
GROUP BY s.region_id, s.requirement_id
ORDER BY 1, 2 NULLS LAST, 3;

-- name: api_compliance
-- Per person, unit and requirement as of a date: valid / expiring / expired / missing
-- (projections.compliance_rows, migrations 0009-0010).
SELECT store_id, person_id, unit_id, requirement_id, last_completed, expires_on, status
FROM projections.compliance_rows($1::bigint[], $2::date, $3::int, $4::text, $5::text, $6::text, $7::text)
WHERE ($8::text IS NULL OR status = $8)
  -- after this row (the cursor of the page before; NULL: from the start)
  AND ($11::bigint IS NULL OR (store_id, unit_id, person_id, requirement_id) > ($11, $12::text, $13::text, $14::text))
ORDER BY store_id, unit_id, person_id, requirement_id
LIMIT $9 OFFSET $10;

-- name: api_compliance_rollup
-- Compliance counts per requirement and unit, trust or region (the levels named in $6, in effect at
-- the date); a person with two employments in one group counts once. Level 'rest': per region,
-- its people in no trust (small-group suppression needs them counted, projections.queries).
WITH rows AS (
    SELECT DISTINCT c.store_id, c.person_id, c.requirement_id, c.status, l.level, l.group_id
    FROM projections.compliance_rows($1::bigint[], $2::date, $3::int, $4::text, $5::text, NULL, NULL) c
    CROSS JOIN LATERAL (VALUES ('unit', c.unit_id), ('trust', c.trust_id), ('region', c.region_id),
                               ('rest', c.region_id)) l(level, group_id)
    WHERE l.level = ANY($6::text[]) AND (l.level <> 'rest' OR c.trust_id IS NULL)
)
SELECT level, group_id, requirement_id, count(*) AS total,
       count(*) FILTER (WHERE status = 'valid') AS valid,
       count(*) FILTER (WHERE status = 'expiring') AS expiring,
       count(*) FILTER (WHERE status = 'expired') AS expired,
       count(*) FILTER (WHERE status = 'missing') AS missing
FROM rows
GROUP BY level, group_id, requirement_id
ORDER BY level, group_id NULLS LAST, requirement_id;


-- name: api_unit_versions
-- Each unit of the stores as of the date: its parent and level (the analyst API walks these to
-- find a unit's trust and region for complementary suppression).
SELECT DISTINCT ON (store_id, unit_id) unit_id, parent_id, level
FROM rm_compliance.units
WHERE store_id = ANY($1::bigint[]) AND valid_from <= $2
ORDER BY store_id, unit_id, valid_from DESC;

-- name: api_units_in_several_stores
-- The unit ids that more than one of the stores uses as of the date, other than a region unit
-- they share, with those stores: in their trees, or as the unit of an employment (which a roll-up
-- groups by its id even where the tree lacks it: a review). A roll-up groups a unit's rows by
-- its id alone, and walks the trees by id, so two stores' units with one id would be one.
WITH ids AS (
    SELECT DISTINCT ON (store_id, unit_id) store_id, unit_id, level
    FROM rm_compliance.units
    WHERE store_id = ANY($1::bigint[]) AND valid_from <= $2
    ORDER BY store_id, unit_id, valid_from DESC
),
used AS (
    SELECT store_id, unit_id, level FROM ids
    UNION
    SELECT e.store_id, e.unit_id, coalesce(i.level, 'unknown')
    FROM rm_compliance.employments e
    LEFT JOIN ids i ON i.store_id = e.store_id AND i.unit_id = e.unit_id
    WHERE e.store_id = ANY($1::bigint[]) AND e.valid_from <= $2 AND (e.valid_to IS NULL OR e.valid_to > $2)
)
SELECT unit_id, array_agg(DISTINCT store_id ORDER BY store_id) AS stores
FROM used
GROUP BY unit_id
HAVING count(DISTINCT store_id) FILTER (WHERE level <> 'region') > 1
    OR (bool_or(level = 'region') AND bool_or(level <> 'region') AND count(DISTINCT store_id) > 1)
ORDER BY unit_id
LIMIT 10;

-- name: api_region_stores
-- The given stores and every store of a region one of them belongs to: where a compliance
-- roll-up's small-group suppression is decided (projections.api._rollup).
SELECT array_agg(s.id ORDER BY s.id) FROM stores s
WHERE s.id = ANY($1::bigint[])
   OR s.region IN (SELECT x.region FROM stores x WHERE x.id = ANY($1::bigint[]) AND x.region IS NOT NULL);

-- name: api_person_stores
-- The stores (id, name) of the given ones in which a person id, or an unlinked identifier, has a
-- transcript: person ids belong to a store (its HR import), so one id in two stores is two people.
SELECT DISTINCT st.id, st.name
FROM stores st
WHERE st.id = ANY($1::bigint[])
  AND (EXISTS (SELECT 1 FROM rm_transcript.links l WHERE l.store_id = st.id AND l.person_id = $2)
       OR EXISTS (SELECT 1 FROM rm_transcript.completions c WHERE c.store_id = st.id AND c.ifi = $2))
ORDER BY st.id;

-- name: projection_schema_bytes
-- The disk a schema's tables take (with their indexes and TOAST); NULL when there is no such schema.
SELECT CASE WHEN n.oid IS NULL THEN NULL
            ELSE coalesce((SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c
                           WHERE c.relnamespace = n.oid AND c.relkind IN ('r', 'm', 'p')), 0) END
FROM (SELECT (SELECT oid FROM pg_namespace WHERE nspname = $1) AS oid) n;

-- name: projection_rebuild_running
-- Whether a session holds the rebuild lock (pg_advisory_lock(int, int)) of a projection.
SELECT EXISTS (SELECT 1 FROM pg_locks
               WHERE locktype = 'advisory' AND granted AND objsubid = 2
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                 AND classid::bigint = ($1::bigint & 4294967295) AND objid::bigint = ($2::bigint & 4294967295));
