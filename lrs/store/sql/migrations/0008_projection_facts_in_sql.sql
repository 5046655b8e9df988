-- 0008: the read models' statement facts are extracted inside PostgreSQL.
--
-- A rebuild replays the whole log, and decoding every payload in Python capped it at a few
-- thousand statements per second per read model. These functions extract the same facts as the
-- reference fold in projections/facts.py (statement_facts; the property test checks that the
-- two agree) straight from events.payload, set-based, so statement events never leave the
-- database. Reference-data events (few) are still folded in Python.

-- An Agent's or identified Group's key, as lrs.ops.terms.agent_key.
CREATE FUNCTION projections.agent_key(a jsonb) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN jsonb_typeof(a) IS DISTINCT FROM 'object' THEN NULL
        WHEN a ? 'mbox' THEN 'mbox:' || CASE WHEN strpos(a->>'mbox', '@') > 0
             THEN split_part(a->>'mbox', '@', 1) || '@' || lower(substr(a->>'mbox', strpos(a->>'mbox', '@') + 1))
             ELSE a->>'mbox' END
        WHEN a ? 'mbox_sha1sum' THEN 'sha1:' || lower(a->>'mbox_sha1sum')
        WHEN a ? 'openid' THEN 'openid:' || (a->>'openid')
        WHEN jsonb_typeof(a->'account') = 'object'
            THEN 'account:' || coalesce(a->'account'->>'homePage', 'None') || '|'
                 || coalesce(a->'account'->>'name', 'None')
        END
$$;

-- An ISO 8601 duration in seconds, as projections.facts.duration_seconds (years of 365 days,
-- months of 30). One match test, then plain substrings: PostgreSQL's regex engine took about
-- 200 us per call for the single pattern with seven capture groups.
CREATE FUNCTION projections.duration_seconds(d text) RETURNS float8 LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN d IS NULL OR d IN ('P', 'PT')
                  OR d !~ ('^P([0-9]+(\.[0-9]+)?Y)?([0-9]+(\.[0-9]+)?M)?([0-9]+(\.[0-9]+)?W)?([0-9]+(\.[0-9]+)?D)?'
                           '(T([0-9]+(\.[0-9]+)?H)?([0-9]+(\.[0-9]+)?M)?([0-9]+(\.[0-9]+)?S)?)?$')
                THEN NULL
           ELSE 0 + coalesce(substring(split_part(d, 'T', 1) from '([0-9.]+)Y')::float8 * 31536000, 0)
                  + coalesce(substring(split_part(d, 'T', 1) from '([0-9.]+)M')::float8 * 2592000, 0)
                  + coalesce(substring(split_part(d, 'T', 1) from '([0-9.]+)W')::float8 * 604800, 0)
                  + coalesce(substring(split_part(d, 'T', 1) from '([0-9.]+)D')::float8 * 86400, 0)
                  + coalesce(substring(split_part(d, 'T', 2) from '([0-9.]+)H')::float8 * 3600, 0)
                  + coalesce(substring(split_part(d, 'T', 2) from '([0-9.]+)M')::float8 * 60, 0)
                  + coalesce(substring(split_part(d, 'T', 2) from '([0-9.]+)S')::float8, 0) END
$$;

-- A statement's timestamp, as projections.facts.parse_timestamp: the stored time when it is
-- missing or not an ISO date-time; without an offset it is UTC; digits past microseconds are
-- cut (Python truncates, PostgreSQL would round). A well-formed text naming an impossible date
-- (the LRS never accepts one) raises, and the read model records the event as failed.
CREATE FUNCTION projections.statement_time(ts text, fallback timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        -- the form the LRS writes and most clients send: a plain cast (one match, no captures)
        WHEN ts ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})$'
            THEN ts::timestamptz
        WHEN ts IS NULL OR ts !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-5][0-9](:[0-5][0-9](\.[0-9]+)?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?$'
            THEN fallback
        WHEN ts ~ '(Z|[+-][0-9]{2}(:?[0-9]{2})?)$'
            THEN regexp_replace(ts, '(\.[0-9]{6})[0-9]+', '\1')::timestamptz
        ELSE regexp_replace(ts, '(\.[0-9]{6})[0-9]+', '\1')::timestamp AT TIME ZONE 'UTC'
        END
$$;

-- The facts of a store's statement events in (after, upto], as projections.facts.statement_facts:
-- one row per statement with an identified actor; voids is set for a voiding statement.
-- p_like (optional): only events whose payload text is LIKE it, tested before parsing.
CREATE FUNCTION projections.statement_facts(p_store bigint, p_after bigint, p_upto bigint, p_like text DEFAULT NULL)
RETURNS TABLE (statement_id uuid, ifi text, verb text, activity_id text, courses text[], success boolean,
               score float8, duration_s float8, at timestamptz, voids uuid, "position" bigint)
LANGUAGE sql STABLE AS $$
    SELECT coalesce(e.statement_id, (j.p->>'id')::uuid),
           o.ifi,
           coalesce(j.p->'verb'->>'id', ''),
           o.activity_id,
           -- the object and the parent and grouping Activities with an id (lax paths take a single
           -- object as a one-element array, as xAPI 1.0.0 allowed, and skip elements without id)
           ARRAY(SELECT DISTINCT c FROM unnest(
               array_remove(ARRAY[o.activity_id], NULL)
               || ARRAY(SELECT jsonb_array_elements_text(
                      jsonb_path_query_array(j.p, 'lax $.context.contextActivities.parent[*] ? (@.type() == "object").id')
                      || jsonb_path_query_array(j.p, 'lax $.context.contextActivities.grouping[*] ? (@.type() == "object").id')))
           ) AS c),
           CASE WHEN jsonb_typeof(j.p->'result'->'success') = 'boolean' THEN (j.p->'result'->'success')::boolean END,
           CASE WHEN jsonb_typeof(j.p->'result'->'score'->'scaled') = 'number'
                THEN (j.p->'result'->'score'->>'scaled')::float8 END,
           projections.duration_seconds(j.p->'result'->>'duration'),
           projections.statement_time(j.p->>'timestamp', e.recorded_at),
           CASE WHEN o.voiding THEN (j.p->'object'->>'id')::uuid END,
           e.position
    FROM events e
    -- OFFSET 0 keeps each lateral a subquery, so the payload is parsed once, not per reference
    CROSS JOIN LATERAL (SELECT e.payload::jsonb AS p OFFSET 0) j
    CROSS JOIN LATERAL (
        SELECT coalesce(j.p->'verb'->>'id' = 'http://adlnet.gov/expapi/verbs/voided'
                        AND j.p->'object'->>'objectType' = 'StatementRef', false) AS voiding,
               CASE WHEN coalesce(j.p->'object'->>'objectType', 'Activity') = 'Activity' AND j.p->'object' ? 'id'
                    THEN j.p->'object'->>'id' END AS activity_id,
               projections.agent_key(j.p->'actor') AS ifi
        OFFSET 0
    ) o
    WHERE e.store_id = p_store AND e.position > p_after AND e.position <= p_upto AND e.kind = 'statement'
      AND (p_like IS NULL OR e.payload::text LIKE p_like)
      AND (o.voiding OR o.ifi IS NOT NULL)
$$;
