-- 0020: no statement the LRS accepts can stop a read model.
--
-- The folds extract facts in SQL (projections.statement_facts), and a value the LRS accepts but
-- a cast there refuses raised an error: the window's batch rolled back and the read model was
-- marked failed at that statement, for its store, until an operator stepped in (a rebuild could
-- not get past it either). Found by a fuzz round; each case is in the corpus of
-- tests/integration/test_projection_facts_sql.py, which compares the SQL with the Python
-- reference (projections/facts.py), and in an acceptance test through a worker:
--
-- - a time zone offset from 16:00 to 23:59 (RFC 3339 allows up to 23:59; PostgreSQL's
--   timestamptz takes at most 15:59): now applied by hand;
-- - a timestamp whose instant falls outside the years 1 to 9999 in UTC
--   (0001-01-01T00:00:00+01:00): PostgreSQL holds it, but no reader could decode it (a 500 in
--   the analyst API); now taken as the nearer end of the years 1 to 9899: a completion's expiry
--   (at most MAX_VALIDITY_DAYS, a century, later) must stay in the calendar too (a completion
--   dated 9999-12-31 made the transcript and the compliance views a 500);
-- - a number a double cannot hold: score.scaled 1E-400 (within [-1, 1], so valid) and
--   durations whose numbers run to hundreds of digits: now read as Python's float() reads
--   them (projections.float8_of): beyond the largest double, infinity; nearer zero than the
--   smallest, zero. A duration of more than 300 characters is summed as numeric (shorter ones
--   cannot overflow a double, and keep the float arithmetic the reference uses).

-- A number as float8 the way Python's float() reads its text.
CREATE FUNCTION projections.float8_of(n numeric) RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN abs(n) >= 1.797693134862315808e308 THEN sign(n) * 'Infinity'::float8
                WHEN abs(n) <= 2.4703282292062328e-324 THEN 0::float8
                ELSE n::float8 END
$$;

-- As projections.duration_number (0015), as numeric.
CREATE FUNCTION projections.duration_numeric(part text, designator text) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN strpos(part, designator) > 0
                THEN reverse(split_part(reverse(translate(substr(part, 1, strpos(part, designator) - 1),
                                                          'YMWDHS', '      ')), ' ', 1))::numeric END
$$;

CREATE OR REPLACE FUNCTION projections.duration_seconds(d text) RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN d IS NULL OR d IN ('P', 'PT')
                  OR d !~ ('^P([0-9]+(\.[0-9]+)?Y)?([0-9]+(\.[0-9]+)?M)?([0-9]+(\.[0-9]+)?W)?([0-9]+(\.[0-9]+)?D)?'
                           '(T([0-9]+(\.[0-9]+)?H)?([0-9]+(\.[0-9]+)?M)?([0-9]+(\.[0-9]+)?S)?)?$')
                THEN NULL
           WHEN length(d) > 300
                THEN projections.float8_of(
                       0 + coalesce(projections.duration_numeric(split_part(substr(d, 2), 'T', 1), 'Y') * 31536000, 0)
                         + coalesce(projections.duration_numeric(split_part(substr(d, 2), 'T', 1), 'M') * 2592000, 0)
                         + coalesce(projections.duration_numeric(split_part(substr(d, 2), 'T', 1), 'W') * 604800, 0)
                         + coalesce(projections.duration_numeric(split_part(substr(d, 2), 'T', 1), 'D') * 86400, 0)
                         + coalesce(projections.duration_numeric(split_part(d, 'T', 2), 'H') * 3600, 0)
                         + coalesce(projections.duration_numeric(split_part(d, 'T', 2), 'M') * 60, 0)
                         + coalesce(projections.duration_numeric(split_part(d, 'T', 2), 'S'), 0))
           ELSE 0 + coalesce(projections.duration_number(split_part(substr(d, 2), 'T', 1), 'Y') * 31536000, 0)
                  + coalesce(projections.duration_number(split_part(substr(d, 2), 'T', 1), 'M') * 2592000, 0)
                  + coalesce(projections.duration_number(split_part(substr(d, 2), 'T', 1), 'W') * 604800, 0)
                  + coalesce(projections.duration_number(split_part(substr(d, 2), 'T', 1), 'D') * 86400, 0)
                  + coalesce(projections.duration_number(split_part(d, 'T', 2), 'H') * 3600, 0)
                  + coalesce(projections.duration_number(split_part(d, 'T', 2), 'M') * 60, 0)
                  + coalesce(projections.duration_number(split_part(d, 'T', 2), 'S'), 0) END
$$;

-- As 0008's (STABLE since 0013), with offsets up to 23:59 and instants within the years 1 to
-- 9899 in UTC. The first branch is the plain cast of the form the LRS writes and most clients
-- send; an offset of 16 hours or more is subtracted by hand; anything unreadable is the stored
-- time, as before.
CREATE OR REPLACE FUNCTION projections.statement_time(ts text, fallback timestamptz) RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT least(greatest(CASE
        WHEN ts ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-](0[0-9]|1[0-5]):[0-5][0-9])$'
            THEN ts::timestamptz
        WHEN ts IS NULL
          OR ts !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-5][0-9](:[0-5][0-9](\.[0-9]+)?)?(Z|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)?$'
            THEN fallback
        WHEN ts ~ '[+-](1[6-9]|2[0-3])(:?[0-5][0-9])?$'
            THEN (regexp_replace(regexp_replace(ts, '[+-][0-9]{2}(:?[0-9]{2})?$', ''), '(\.[0-9]{6})[0-9]+', '\1')::timestamp
                  - (substring(ts from '([+-])[0-9]{2}(:?[0-9]{2})?$') || '1')::int
                    * make_interval(hours => substring(ts from '[+-]([0-9]{2})(:?[0-9]{2})?$')::int,
                                    mins => coalesce(substring(ts from '[+-][0-9]{2}:?([0-9]{2})$')::int, 0)))
                 AT TIME ZONE 'UTC'
        WHEN ts ~ '(Z|[+-][0-9]{2}(:?[0-9]{2})?)$'
            THEN regexp_replace(ts, '(\.[0-9]{6})[0-9]+', '\1')::timestamptz
        ELSE regexp_replace(ts, '(\.[0-9]{6})[0-9]+', '\1')::timestamp AT TIME ZONE 'UTC'
        END, '0001-01-01 00:00:00+00'::timestamptz), '9899-12-31 23:59:59.999999+00'::timestamptz)
$$;

-- As 0015's, with the scaled score read by float8_of.
CREATE OR REPLACE FUNCTION projections.statement_facts(p_store bigint, p_after bigint, p_upto bigint,
                                                       p_like text DEFAULT NULL)
RETURNS TABLE (statement_id uuid, ifi text, verb text, activity_id text, courses text[], success boolean,
               score float8, duration_s float8, at timestamptz, voids uuid, "position" bigint)
LANGUAGE sql STABLE AS $$
    SELECT coalesce(e.statement_id, (j.p->>'id')::uuid),
           o.ifi,
           coalesce(j.p->'verb'->>'id', ''),
           o.activity_id,
           ARRAY(SELECT DISTINCT c FROM unnest(
               array_remove(ARRAY[o.activity_id], NULL)
               || ARRAY(SELECT jsonb_array_elements_text(
                      jsonb_path_query_array(j.p, 'lax $.context.contextActivities.parent[*] ? (@.type() == "object").id')
                      || jsonb_path_query_array(j.p, 'lax $.context.contextActivities.grouping[*] ? (@.type() == "object").id')))
           ) AS c),
           CASE WHEN jsonb_typeof(r.success) = 'boolean' THEN r.success::boolean END,
           CASE WHEN jsonb_typeof(r.scaled) = 'number' THEN projections.float8_of(r.scaled::numeric) END,
           projections.duration_seconds(r.duration),
           projections.statement_time(j.p->>'timestamp', e.recorded_at),
           CASE WHEN o.voiding THEN (j.p->'object'->>'id')::uuid END,
           e.position
    FROM events e
    -- OFFSET 0 keeps each lateral a subquery, so the payload is parsed once and each member read
    -- once, not per reference
    CROSS JOIN LATERAL (SELECT e.payload::jsonb AS p OFFSET 0) j
    CROSS JOIN LATERAL (
        SELECT coalesce(j.p->'verb'->>'id' = 'http://adlnet.gov/expapi/verbs/voided'
                        AND j.p->'object'->>'objectType' = 'StatementRef', false) AS voiding,
               CASE WHEN coalesce(j.p->'object'->>'objectType', 'Activity') = 'Activity' AND j.p->'object' ? 'id'
                    THEN j.p->'object'->>'id' END AS activity_id,
               projections.agent_key(j.p->'actor') AS ifi
        OFFSET 0
    ) o
    CROSS JOIN LATERAL (
        SELECT j.p->'result'->'success' AS success, j.p->'result'->'score'->'scaled' AS scaled,
               j.p->'result'->>'duration' AS duration
        OFFSET 0
    ) r
    WHERE e.store_id = p_store AND e.position > p_after AND e.position <= p_upto AND e.kind = 'statement'
      AND (p_like IS NULL OR e.payload::text LIKE p_like)
      AND (o.voiding OR o.ifi IS NOT NULL)
$$;
