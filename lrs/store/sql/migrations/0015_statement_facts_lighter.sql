-- 0015: the statement facts are extracted with less work.
--
-- Extracting a statement's facts (0008) is the largest share of a rebuild (1,000,000 statements:
-- 27 s of a 95 s `rebuild all` on two cores) and runs for every statement of every live window.
-- duration_seconds was inlined with its argument (`p->'result'->>'duration'`) substituted for
-- each of its ~15 uses, and took its seven numbers with seven regular expressions. Now the
-- result's members are read once (a lateral) and the numbers are cut out with plain string
-- functions after the one validating match. Over 200,000 statements of bench/projections
-- (tmp script, best of three, this noisy machine): 36-42 us per statement before, 28-29 after.
-- (Reading the payload with json_to_record instead of parsing it into jsonb was tried: json's
-- operators parse a member again for every use, and it came out no faster.)
-- The results are the same (tests/integration/test_projection_facts_sql.py compares them with
-- the Python reference, corpus and hypothesis; the property test compares whole read models).

-- The number before a designator letter in one part of a valid ISO 8601 duration ('1Y2M3D' and
-- 'M' -> 2; NULL when the part has no such letter): the text before the letter, back to the
-- previous designator.
CREATE FUNCTION projections.duration_number(part text, designator text) RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN strpos(part, designator) > 0
                THEN reverse(split_part(reverse(translate(substr(part, 1, strpos(part, designator) - 1),
                                                          'YMWDHS', '      ')), ' ', 1))::float8 END
$$;

CREATE OR REPLACE FUNCTION projections.duration_seconds(d text) RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN d IS NULL OR d IN ('P', 'PT')
                  OR d !~ ('^P([0-9]+(\.[0-9]+)?Y)?([0-9]+(\.[0-9]+)?M)?([0-9]+(\.[0-9]+)?W)?([0-9]+(\.[0-9]+)?D)?'
                           '(T([0-9]+(\.[0-9]+)?H)?([0-9]+(\.[0-9]+)?M)?([0-9]+(\.[0-9]+)?S)?)?$')
                THEN NULL
           ELSE 0 + coalesce(projections.duration_number(split_part(substr(d, 2), 'T', 1), 'Y') * 31536000, 0)
                  + coalesce(projections.duration_number(split_part(substr(d, 2), 'T', 1), 'M') * 2592000, 0)
                  + coalesce(projections.duration_number(split_part(substr(d, 2), 'T', 1), 'W') * 604800, 0)
                  + coalesce(projections.duration_number(split_part(substr(d, 2), 'T', 1), 'D') * 86400, 0)
                  + coalesce(projections.duration_number(split_part(d, 'T', 2), 'H') * 3600, 0)
                  + coalesce(projections.duration_number(split_part(d, 'T', 2), 'M') * 60, 0)
                  + coalesce(projections.duration_number(split_part(d, 'T', 2), 'S'), 0) END
$$;

-- As 0008's, with the result's members read once, in a lateral.
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
           CASE WHEN jsonb_typeof(r.scaled) = 'number' THEN r.scaled::float8 END,
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
