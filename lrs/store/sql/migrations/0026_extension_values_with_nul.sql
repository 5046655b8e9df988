-- 0026: a statement whose extension holds U+0000 is stored, and read models read it.
--
-- xAPI Data 4.1: an LRS "MUST NOT reject a Statement based on the values of the extensions
-- map", and JSON text may hold any character, U+0000 (NUL) too, escaped as \u0000. Such a
-- statement was refused (400), since PostgreSQL's text and jsonb cannot hold the character.
-- Its body is json, which keeps the text as sent and can; what else has to change:
--   * the projections read each body as jsonb (projections.statement_facts): a body that
--     holds the escape is read with it replaced by \ufffd (U+FFFD, the replacement character)
--     by projections.jsonb_of. The read models take no extension values, so no fact changes.
--     The replacement skips an escaped backslash before "u0000" (the text \\u0000 is a
--     backslash and the letters u0000, not the character);
--   * a re-sent id is compared with the stored body, which the append check now collects as
--     json (lrs/store/sql/statements.sql append_check), not jsonb;
--   * a canonical Activity definition (jsonb) holds U+FFFD where its extension held U+0000
--     (lrs/store/activities.py definition_args).
-- U+0000 anywhere else (a name, an account, a language map) is still refused with 400 naming the
-- path: those are kept as text too (the statement index, agent names).
--
-- statement_facts is 0020's, with the body read by jsonb_of.

-- A statement body as jsonb; the escape of U+0000, which jsonb refuses, as that of U+FFFD.
-- Bodies without it (all but a few) are cast as they are: strpos looks for the escape first.
CREATE FUNCTION projections.jsonb_of(body json) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN strpos(body::text, '\u0000') = 0 THEN body::jsonb
                ELSE regexp_replace(body::text, '(?<!\\)((?:\\\\)*)\\u0000', '\1\\ufffd', 'g')::jsonb END
$$;

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
    CROSS JOIN LATERAL (SELECT projections.jsonb_of(e.payload) AS p OFFSET 0) j
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
