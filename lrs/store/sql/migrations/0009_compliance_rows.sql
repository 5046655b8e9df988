-- 0009: one definition of "compliance as of a date", set-based.
--
-- The analyst queries api_compliance and api_compliance_rollup each carried their own copy of
-- this logic, and both looked up every (person, requirement) pair's last completion with a
-- correlated subquery whose OR kept it off the completions index: a region of a few thousand
-- people took minutes. Here the people due, their identifiers and their completions are joined
-- as sets (hash joins), the org tree is folded into one row of ancestors per unit, and both
-- queries read the rows of this function.
--
-- The tables are named with their schema (rm_compliance.*): a rebuild swaps a fresh schema in
-- under that name, and a SQL function resolves names when it is called.

CREATE FUNCTION projections.compliance_rows(
    p_stores bigint[], p_as_of date, p_window integer, p_tz text,
    p_requirement text, p_unit text, p_person text
) RETURNS TABLE (store_id bigint, person_id text, unit_id text, requirement_id text, last_completed date,
                 expires_on date, status text, trust_id text, region_id text)
LANGUAGE sql STABLE AS $$
WITH RECURSIVE uv AS (
    -- each unit's version in effect at the date
    SELECT DISTINCT ON (u.store_id, u.unit_id) u.store_id, u.unit_id, u.parent_id, u.level
    FROM rm_compliance.units u WHERE u.store_id = ANY(p_stores) AND u.valid_from <= p_as_of
    ORDER BY u.store_id, u.unit_id, u.valid_from DESC
),
anc (store_id, unit_id, ancestor_id, level, depth) AS (
    SELECT uv.store_id, uv.unit_id, uv.unit_id, uv.level, 0 FROM uv
    UNION ALL
    SELECT a.store_id, a.unit_id, p.unit_id, p.level, a.depth + 1
    FROM anc a JOIN uv c ON c.store_id = a.store_id AND c.unit_id = a.ancestor_id
    JOIN uv p ON p.store_id = c.store_id AND p.unit_id = c.parent_id
    WHERE a.depth < 32
),
tree AS (
    -- per unit: itself and its ancestors, and the nearest trust and region above (or at) it
    SELECT a.store_id, a.unit_id, array_agg(a.ancestor_id) AS ancestors,
           (array_agg(a.ancestor_id ORDER BY a.depth) FILTER (WHERE a.level = 'trust'))[1] AS trust_id,
           (array_agg(a.ancestor_id ORDER BY a.depth) FILTER (WHERE a.level = 'region'))[1] AS region_id
    FROM anc a GROUP BY a.store_id, a.unit_id
),
emp AS (
    -- employments in effect at the date, with their unit's ancestors (a unit unknown at the
    -- date is only itself)
    SELECT e.store_id, e.person_id, e.unit_id, e.role, e.profession,
           coalesce(t.ancestors, ARRAY[e.unit_id]) AS ancestors, t.trust_id, t.region_id
    FROM rm_compliance.employments e
    LEFT JOIN tree t ON t.store_id = e.store_id AND t.unit_id = e.unit_id
    WHERE e.store_id = ANY(p_stores) AND e.valid_from <= p_as_of AND (e.valid_to IS NULL OR e.valid_to > p_as_of)
      AND (p_person IS NULL OR e.person_id = p_person)
      AND (p_unit IS NULL OR p_unit = ANY(coalesce(t.ancestors, ARRAY[e.unit_id])))
),
due AS (
    -- who must hold which requirement, and in which unit (twice employed in one unit: once)
    SELECT DISTINCT e.store_id, e.person_id, e.unit_id, e.trust_id, e.region_id, r.requirement_id, r.validity_days
    FROM emp e
    JOIN rm_compliance.requirements r ON r.store_id = e.store_id
    WHERE (p_requirement IS NULL OR r.requirement_id = p_requirement)
      AND (cardinality(r.roles) = 0 OR e.role = ANY(r.roles))
      AND (cardinality(r.professions) = 0 OR e.profession = ANY(r.professions))
      AND (cardinality(r.units) = 0 OR r.units && e.ancestors)
),
satisfies AS (
    -- which activities satisfy which requirement
    SELECT DISTINCT r.store_id, r.requirement_id, a.activity_id
    FROM rm_compliance.requirements r CROSS JOIN LATERAL unnest(r.activity_ids) AS a(activity_id)
    WHERE r.store_id = ANY(p_stores) AND (p_requirement IS NULL OR r.requirement_id = p_requirement)
),
people AS (SELECT DISTINCT d.store_id, d.person_id FROM due d),
ids AS (
    -- a person's identifiers: those linked to them; an identifier linked to no one is a person
    -- of its own (keyed by itself)
    SELECT p.store_id, p.person_id, l.ifi
    FROM people p JOIN rm_compliance.links l ON l.store_id = p.store_id AND l.person_id = p.person_id
    UNION
    SELECT p.store_id, p.person_id, p.person_id
    FROM people p
    WHERE NOT EXISTS (SELECT 1 FROM rm_compliance.links l WHERE l.store_id = p.store_id AND l.ifi = p.person_id)
),
done AS MATERIALIZED (
    -- each person's latest counting completion (not failed, on or before the date) per activity;
    -- MATERIALIZED: aggregated before it meets the requirements (the planner, misled by the
    -- estimates of the CTEs above, otherwise crossed identifiers with activities first)
    SELECT i.store_id, i.person_id, c.activity_id, max(c.completed_at) AS last_at
    FROM ids i
    JOIN rm_compliance.completions c ON c.store_id = i.store_id AND c.ifi = i.ifi
    WHERE c.success IS DISTINCT FROM false
      AND (c.completed_at AT TIME ZONE p_tz)::date <= p_as_of
    GROUP BY i.store_id, i.person_id, c.activity_id
),
last AS (
    SELECT x.store_id, x.person_id, s.requirement_id, max(x.last_at) AS last_at
    FROM done x JOIN satisfies s ON s.store_id = x.store_id AND s.activity_id = x.activity_id
    GROUP BY x.store_id, x.person_id, s.requirement_id
),
best AS (
    SELECT d.store_id, d.person_id, d.unit_id, d.trust_id, d.region_id, d.requirement_id, d.validity_days,
           (x.last_at AT TIME ZONE p_tz)::date AS last_completed
    FROM due d
    LEFT JOIN last x ON x.store_id = d.store_id AND x.person_id = d.person_id AND x.requirement_id = d.requirement_id
)
SELECT b.store_id, b.person_id, b.unit_id, b.requirement_id, b.last_completed,
       b.last_completed + b.validity_days,
       CASE WHEN b.last_completed IS NULL THEN 'missing'
            WHEN b.validity_days IS NULL THEN 'valid'
            WHEN b.last_completed + b.validity_days <= p_as_of THEN 'expired'
            WHEN b.last_completed + b.validity_days <= p_as_of + p_window THEN 'expiring'
            ELSE 'valid' END,
       b.trust_id, b.region_id
FROM best b
$$;
