-- 0010: compliance status kept by the compliance projection, so the analyst queries read
-- rows instead of recomputing every (person, requirement) pair from the completions.
--
-- Computing compliance from the fact tables (projections.compliance_rows, 0009) joins every
-- person due with every completion of theirs: for a region (80,000 people, 20 requirements,
-- 5,000,000 statements) a rollup took tens of seconds. The compliance read model now also keeps
-- (the "status" family):
--
--   status        one row per (person, unit, requirement) due as of the model's date, with the
--                 last counting completion and when it expires ('infinity': never; '-infinity':
--                 no completion at all);
--   status_summary per level (unit, trust, region), group and requirement: the expiry dates in
--                 order, how many people have each and how many expire on or before each, so a
--                 rollup as of any date with any expiring window is two binary searches
--                 (width_bucket) a row;
--   status_pending changes to the summary not folded into it yet: people added to (+) or gone
--                 from (-) an expiry date of a group; a rollup adds them up with the summary. A
--                 window appends its changes here (cheap whatever the group's size) and a key
--                 is folded into its summary row once it has FOLD_AFTER changes;
--   status_units  the units people are due in, with their ancestors as of the model's date (for
--                 "this unit and the units below");
--   status_meta   per store: the date the rows are computed for (as_of), the reporting time
--                 zone, and the latest completion date they count (max_completed).
--
-- The rows answer a query as of date D exactly when nothing they depend on differs between
-- as_of and D: no employment starts or ends and no unit version begins between the two dates,
-- and no counted completion is dated after D (projections.compliance_status_answers). Any other
-- date is computed from the fact tables as before. The runner keeps the rows current: each
-- window recomputes the people it touched (completions, voids, links, employments) and adjusts
-- the counts by the difference; org and requirement changes, a new day with an effective-dated
-- change, or a different time zone recompute the store (projections/status.py).

-- compliance_due names its tables without a schema (the caller's search_path picks the read
-- model), so its body cannot be checked against tables when it is created.
SET LOCAL check_function_bodies = off;

ALTER FUNCTION projections.create_read_model(text, text[]) RENAME TO create_read_model_families;

CREATE FUNCTION projections.create_read_model(target text, families text[]) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    IF 'status' = ANY(families) THEN
        -- (made first: the older function grants reading and sets row-level security on every
        -- table of the schema)
        EXECUTE format($$
            CREATE TABLE %1$I.status_meta (
                store_id       bigint PRIMARY KEY,
                as_of          date NOT NULL,
                tz             text NOT NULL,
                max_completed  date,
                computed_at    timestamptz NOT NULL DEFAULT now()
            );
            CREATE TABLE %1$I.status (
                store_id        bigint NOT NULL,
                person_id       text NOT NULL,
                unit_id         text NOT NULL,
                trust_id        text,
                region_id       text,
                requirement_id  text NOT NULL,
                last_completed  date,
                expires_on      date NOT NULL,
                PRIMARY KEY (store_id, person_id, unit_id, requirement_id)
            );
            CREATE INDEX ON %1$I.status (store_id, unit_id, person_id, requirement_id);
            CREATE TABLE %1$I.status_summary (
                store_id        bigint NOT NULL,
                level           text NOT NULL,
                group_id        text NOT NULL,
                requirement_id  text NOT NULL,
                dates           date[] NOT NULL,
                counts          integer[] NOT NULL,
                below           integer[] NOT NULL,
                missing         integer NOT NULL,
                total           integer NOT NULL,
                PRIMARY KEY (store_id, level, group_id, requirement_id)
            );
            CREATE TABLE %1$I.status_pending (
                store_id        bigint NOT NULL,
                level           text NOT NULL,
                group_id        text NOT NULL,
                requirement_id  text NOT NULL,
                expires_on      date NOT NULL,
                n               integer NOT NULL,
                PRIMARY KEY (store_id, level, group_id, requirement_id, expires_on)
            );
            CREATE TABLE %1$I.status_units (
                store_id   bigint NOT NULL,
                unit_id    text NOT NULL,
                ancestors  text[] NOT NULL,
                PRIMARY KEY (store_id, unit_id)
            )$$, target);
    END IF;
    PERFORM projections.create_read_model_families(target, families);
    IF 'status' = ANY(families) AND 'employments' = ANY(families) THEN
        -- "did an employment start or end between two dates" (compliance_dates_differ)
        EXECUTE format($$
            CREATE INDEX ON %1$I.employments (store_id, valid_from);
            CREATE INDEX ON %1$I.employments (store_id, valid_to)$$, target);
    END IF;
END;
$fn$;

-- The live compliance read model gains the family (made in a scratch schema by the function
-- above, then moved); the runner computes a store's rows when it finds no status_meta row.
DO $$
DECLARE tbl text;
BEGIN
    CREATE SCHEMA rm_compliance_status_new;
    PERFORM projections.create_read_model('rm_compliance_status_new', ARRAY['status']);
    FOR tbl IN SELECT unnest(ARRAY['status_meta', 'status', 'status_summary', 'status_pending', 'status_units']) LOOP
        EXECUTE format('ALTER TABLE rm_compliance_status_new.%I SET SCHEMA rm_compliance', tbl);
    END LOOP;
    DROP SCHEMA rm_compliance_status_new CASCADE;
END;
$$;
CREATE INDEX ON rm_compliance.employments (store_id, valid_from);
CREATE INDEX ON rm_compliance.employments (store_id, valid_to);

-- Who is due which requirement as of a date, in which unit (with its trust and region), and
-- their last counting completion (not failed, any linked identifier, dated on or before
-- p_completed_upto: the date itself for an answer as of the date, 'infinity' for the status rows).
-- Tables are resolved on the caller's search_path: the runner puts the read model's schema
-- (live or a rebuild's) first; compliance_rows below reads the live one.
CREATE FUNCTION projections.compliance_due(
    p_stores bigint[], p_as_of date, p_tz text, p_requirement text, p_unit text, p_persons text[],
    p_completed_upto date
) RETURNS TABLE (store_id bigint, person_id text, unit_id text, trust_id text, region_id text,
                 ancestors text[], requirement_id text, validity_days integer, last_completed date)
LANGUAGE sql STABLE AS $$
WITH RECURSIVE uv AS (
    -- each unit's version in effect at the date
    SELECT DISTINCT ON (u.store_id, u.unit_id) u.store_id, u.unit_id, u.parent_id, u.level
    FROM units u WHERE u.store_id = ANY(p_stores) AND u.valid_from <= p_as_of
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
chosen AS (
    -- the employments to look at: all, or the named people's (two branches, so that the second
    -- finds its people by the primary key instead of filtering every employment)
    SELECT e.* FROM employments e WHERE p_persons IS NULL AND e.store_id = ANY(p_stores)
    UNION ALL
    SELECT e.* FROM unnest(p_persons) AS pp(person_id)
    JOIN employments e ON e.store_id = ANY(p_stores) AND e.person_id = pp.person_id
),
emp AS (
    -- employments in effect at the date, with their unit's ancestors (a unit unknown at the
    -- date is only itself)
    SELECT e.store_id, e.person_id, e.unit_id, e.role, e.profession,
           coalesce(t.ancestors, ARRAY[e.unit_id]) AS ancestors, t.trust_id, t.region_id
    FROM chosen e
    LEFT JOIN tree t ON t.store_id = e.store_id AND t.unit_id = e.unit_id
    WHERE e.valid_from <= p_as_of AND (e.valid_to IS NULL OR e.valid_to > p_as_of)
      AND (p_unit IS NULL OR p_unit = ANY(coalesce(t.ancestors, ARRAY[e.unit_id])))
),
due AS (
    -- who must hold which requirement, and in which unit (twice employed in one unit: once)
    SELECT DISTINCT ON (e.store_id, e.person_id, e.unit_id, r.requirement_id)
           e.store_id, e.person_id, e.unit_id, e.trust_id, e.region_id, e.ancestors, r.requirement_id,
           r.validity_days
    FROM emp e
    JOIN requirements r ON r.store_id = e.store_id
    WHERE (p_requirement IS NULL OR r.requirement_id = p_requirement)
      AND (cardinality(r.roles) = 0 OR e.role = ANY(r.roles))
      AND (cardinality(r.professions) = 0 OR e.profession = ANY(r.professions))
      AND (cardinality(r.units) = 0 OR r.units && e.ancestors)
),
satisfies AS (
    -- which activities satisfy which requirement
    SELECT DISTINCT r.store_id, r.requirement_id, a.activity_id
    FROM requirements r CROSS JOIN LATERAL unnest(r.activity_ids) AS a(activity_id)
    WHERE r.store_id = ANY(p_stores) AND (p_requirement IS NULL OR r.requirement_id = p_requirement)
),
people AS (SELECT DISTINCT d.store_id, d.person_id FROM due d),
ids AS (
    -- a person's identifiers: those linked to them; an identifier linked to no one is a person
    -- of its own (keyed by itself)
    SELECT p.store_id, p.person_id, l.ifi
    FROM people p JOIN links l ON l.store_id = p.store_id AND l.person_id = p.person_id
    UNION
    SELECT p.store_id, p.person_id, p.person_id
    FROM people p
    WHERE NOT EXISTS (SELECT 1 FROM links l WHERE l.store_id = p.store_id AND l.ifi = p.person_id)
),
done AS MATERIALIZED (
    -- each person's latest counting completion (not failed, dated by p_completed_upto) per activity;
    -- MATERIALIZED: aggregated before it meets the requirements (the planner, misled by the
    -- estimates of the CTEs above, otherwise crossed identifiers with activities first)
    SELECT i.store_id, i.person_id, c.activity_id, max(c.completed_at) AS last_at
    FROM ids i
    JOIN completions c ON c.store_id = i.store_id AND c.ifi = i.ifi
    WHERE c.success IS DISTINCT FROM false
      AND (c.completed_at AT TIME ZONE p_tz)::date <= p_completed_upto
    GROUP BY i.store_id, i.person_id, c.activity_id
),
candidates AS (
    -- the people due, and beside them each completion that satisfies a requirement; the latest
    -- per (person, requirement) is taken by a window over both rather than by a join, which the
    -- planner, estimating "due" at a row or two, ran as a nested loop over every pair
    SELECT d.store_id, d.person_id, d.requirement_id, d.unit_id, d.trust_id, d.region_id, d.ancestors,
           d.validity_days, NULL::timestamptz AS last_at
    FROM due d
    UNION ALL
    SELECT x.store_id, x.person_id, s.requirement_id, NULL, NULL, NULL, NULL, NULL, x.last_at
    FROM done x JOIN satisfies s ON s.store_id = x.store_id AND s.activity_id = x.activity_id
)
SELECT w.store_id, w.person_id, w.unit_id, w.trust_id, w.region_id, w.ancestors, w.requirement_id, w.validity_days,
       (w.best AT TIME ZONE p_tz)::date
FROM (SELECT c.*, max(c.last_at) OVER (PARTITION BY c.store_id, c.person_id, c.requirement_id) AS best
      FROM candidates c) w
WHERE w.unit_id IS NOT NULL
$$;

-- The analysts' definition, unchanged (0009), now over compliance_due on the live read model.
DROP FUNCTION projections.compliance_rows(bigint[], date, integer, text, text, text, text);
CREATE FUNCTION projections.compliance_rows(
    p_stores bigint[], p_as_of date, p_window integer, p_tz text,
    p_requirement text, p_unit text, p_person text
) RETURNS TABLE (store_id bigint, person_id text, unit_id text, requirement_id text, last_completed date,
                 expires_on date, status text, trust_id text, region_id text)
LANGUAGE sql STABLE SET search_path = rm_compliance, public AS $$
SELECT b.store_id, b.person_id, b.unit_id, b.requirement_id, b.last_completed,
       b.last_completed + b.validity_days,
       CASE WHEN b.last_completed IS NULL THEN 'missing'
            WHEN b.validity_days IS NULL THEN 'valid'
            WHEN b.last_completed + b.validity_days <= p_as_of THEN 'expired'
            WHEN b.last_completed + b.validity_days <= p_as_of + p_window THEN 'expiring'
            ELSE 'valid' END,
       b.trust_id, b.region_id
FROM projections.compliance_due(p_stores, p_as_of, p_tz, p_requirement, p_unit,
                                CASE WHEN p_person IS NULL THEN NULL ELSE ARRAY[p_person] END, p_as_of) b
$$;

-- Recompute the status rows of a store's named people (p_persons; NULL: every person, after
-- the caller emptied the store's rows) as of a date, writing only rows that changed, and record
-- the difference in status_pending: per level, group and requirement, the people gone from and
-- added to each expiry date (a person in two units of one trust counts once there); returns the
-- keys it changed. Runs on the caller's search_path (the read model's schema first).
CREATE FUNCTION projections.compliance_status_apply(p_store bigint, p_as_of date, p_tz text, p_persons text[])
RETURNS TABLE (level text, group_id text, requirement_id text) LANGUAGE sql AS $$
WITH new_rows AS MATERIALIZED (
    SELECT d.store_id, d.person_id, d.unit_id, d.trust_id, d.region_id, d.requirement_id, d.last_completed,
           CASE WHEN d.last_completed IS NULL THEN '-infinity'::date
                WHEN d.validity_days IS NULL THEN 'infinity'::date
                ELSE d.last_completed + d.validity_days END AS expires_on,
           d.ancestors
    FROM projections.compliance_due(ARRAY[p_store], p_as_of, p_tz, NULL, NULL, p_persons, 'infinity') d
),
old_rows AS MATERIALIZED (
    -- two branches, so that the named people are found by the primary key
    SELECT s.ctid AS row_id, s.* FROM status s WHERE p_persons IS NULL AND s.store_id = p_store
    UNION ALL
    SELECT s.ctid, s.* FROM unnest(p_persons) AS pp(person_id)
    JOIN status s ON s.store_id = p_store AND s.person_id = pp.person_id
),
upserted AS (
    INSERT INTO status AS s (store_id, person_id, unit_id, trust_id, region_id, requirement_id, last_completed,
                             expires_on)
    SELECT n.store_id, n.person_id, n.unit_id, n.trust_id, n.region_id, n.requirement_id, n.last_completed,
           n.expires_on
    FROM new_rows n
    WHERE NOT EXISTS (SELECT 1 FROM old_rows o
                      WHERE o.person_id = n.person_id AND o.unit_id = n.unit_id
                        AND o.requirement_id = n.requirement_id AND o.expires_on = n.expires_on
                        AND o.trust_id IS NOT DISTINCT FROM n.trust_id AND o.region_id IS NOT DISTINCT FROM n.region_id
                        AND o.last_completed IS NOT DISTINCT FROM n.last_completed)
    ON CONFLICT (store_id, person_id, unit_id, requirement_id) DO UPDATE
    SET trust_id = EXCLUDED.trust_id, region_id = EXCLUDED.region_id, last_completed = EXCLUDED.last_completed,
        expires_on = EXCLUDED.expires_on
),
deleted AS (
    -- by row id (a TID scan: a join here was planned as a scan of the whole table)
    DELETE FROM status s
    WHERE s.ctid = ANY(ARRAY(
        SELECT o.row_id FROM old_rows o
        WHERE NOT EXISTS (SELECT 1 FROM new_rows n WHERE n.person_id = o.person_id AND n.unit_id = o.unit_id
                                                     AND n.requirement_id = o.requirement_id)))
),
units AS (
    -- the units people are due in, with their ancestors (for "this unit and the units below")
    INSERT INTO status_units AS u (store_id, unit_id, ancestors)
    SELECT DISTINCT ON (n.unit_id) p_store, n.unit_id, n.ancestors FROM new_rows n
    ON CONFLICT (store_id, unit_id) DO UPDATE SET ancestors = EXCLUDED.ancestors
),
new_groups AS (
    SELECT l.level, l.group_id, r.person_id, r.requirement_id, r.expires_on
    FROM new_rows r CROSS JOIN LATERAL (VALUES ('unit', r.unit_id), ('trust', coalesce(r.trust_id, '')),
                                               ('region', coalesce(r.region_id, ''))) l(level, group_id)
),
old_groups AS (
    SELECT l.level, l.group_id, r.person_id, r.requirement_id, r.expires_on
    FROM old_rows r CROSS JOIN LATERAL (VALUES ('unit', r.unit_id), ('trust', coalesce(r.trust_id, '')),
                                               ('region', coalesce(r.region_id, ''))) l(level, group_id)
),
diff AS (
    SELECT d.*, 1 AS n FROM (SELECT * FROM new_groups EXCEPT SELECT * FROM old_groups) d
    UNION ALL
    SELECT d.*, -1 FROM (SELECT * FROM old_groups EXCEPT SELECT * FROM new_groups) d
)
INSERT INTO status_pending AS c (store_id, level, group_id, requirement_id, expires_on, n)
SELECT p_store, d.level, d.group_id, d.requirement_id, d.expires_on, sum(d.n)
FROM diff d
GROUP BY d.level, d.group_id, d.requirement_id, d.expires_on
ON CONFLICT (store_id, level, group_id, requirement_id, expires_on) DO UPDATE SET n = c.n + EXCLUDED.n
RETURNING c.level, c.group_id, c.requirement_id
$$;

-- Fold the pending changes of some (level, group, requirement) keys of a store into their
-- summary rows (NULL arrays: every key with pending changes). dates starts with '-infinity'
-- (counts and below with 0), so width_bucket always finds a place.
CREATE FUNCTION projections.compliance_status_fold(p_store bigint, p_levels text[], p_groups text[],
                                                   p_requirements text[])
RETURNS void LANGUAGE sql AS $$
WITH keys AS MATERIALIZED (
    SELECT DISTINCT p.level, p.group_id, p.requirement_id FROM status_pending p
    WHERE p_levels IS NULL AND p.store_id = p_store
    UNION ALL
    SELECT * FROM unnest(p_levels, p_groups, p_requirements)
),
taken AS (
    DELETE FROM status_pending p USING keys k
    WHERE p.store_id = p_store AND p.level = k.level AND p.group_id = k.group_id AND p.requirement_id = k.requirement_id
    RETURNING p.level, p.group_id, p.requirement_id, p.expires_on, p.n
),
summary AS (
    SELECT s.* FROM keys k
    JOIN status_summary s ON s.store_id = p_store AND s.level = k.level AND s.group_id = k.group_id
                         AND s.requirement_id = k.requirement_id
),
merged AS (
    SELECT x.level, x.group_id, x.requirement_id, x.expires_on, sum(x.n)::integer AS n
    FROM (SELECT s.level, s.group_id, s.requirement_id, u.expires_on, u.n
          FROM summary s CROSS JOIN LATERAL unnest(s.dates, s.counts) AS u(expires_on, n)
          WHERE u.expires_on > '-infinity'
          UNION ALL
          SELECT s.level, s.group_id, s.requirement_id, '-infinity', s.missing FROM summary s
          UNION ALL
          SELECT * FROM taken) x
    GROUP BY x.level, x.group_id, x.requirement_id, x.expires_on
    HAVING sum(x.n) <> 0
),
running AS (
    SELECT m.*, sum(m.n) FILTER (WHERE m.expires_on > '-infinity')
                    OVER (PARTITION BY m.level, m.group_id, m.requirement_id ORDER BY m.expires_on) AS below
    FROM merged m
),
built AS (
    SELECT r.level, r.group_id, r.requirement_id,
           '{-infinity}'::date[] || coalesce(array_agg(r.expires_on ORDER BY r.expires_on)
                                             FILTER (WHERE r.expires_on > '-infinity'), '{}') AS dates,
           '{0}'::integer[] || coalesce(array_agg(r.n ORDER BY r.expires_on)
                                        FILTER (WHERE r.expires_on > '-infinity'), '{}') AS counts,
           '{0}'::integer[] || coalesce(array_agg(r.below::integer ORDER BY r.expires_on)
                                        FILTER (WHERE r.expires_on > '-infinity'), '{}') AS below,
           coalesce(sum(r.n) FILTER (WHERE r.expires_on = '-infinity'), 0)::integer AS missing,
           sum(r.n)::integer AS total
    FROM running r
    GROUP BY r.level, r.group_id, r.requirement_id
),
emptied AS (
    -- keys nobody is in any more
    DELETE FROM status_summary s USING keys k
    WHERE s.store_id = p_store AND s.level = k.level AND s.group_id = k.group_id AND s.requirement_id = k.requirement_id
      AND NOT EXISTS (SELECT 1 FROM built b WHERE b.level = k.level AND b.group_id = k.group_id
                                              AND b.requirement_id = k.requirement_id)
)
INSERT INTO status_summary AS s (store_id, level, group_id, requirement_id, dates, counts, below, missing, total)
SELECT p_store, b.* FROM built b
ON CONFLICT (store_id, level, group_id, requirement_id) DO UPDATE
SET dates = EXCLUDED.dates, counts = EXCLUDED.counts, below = EXCLUDED.below, missing = EXCLUDED.missing,
    total = EXCLUDED.total
$$;

-- The status rows of the named people, recomputed as of the store's status_meta date (nothing
-- when the store's rows are not computed yet: the runner computes the whole store first).
CREATE FUNCTION projections.compliance_status_refresh(p_store bigint, p_persons text[]) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE m record; levels text[]; groups text[]; requirements text[];
BEGIN
    SELECT * INTO m FROM status_meta WHERE store_id = p_store;
    IF NOT FOUND OR p_persons IS NULL OR cardinality(p_persons) = 0 THEN
        RETURN;
    END IF;
    -- fold the keys this changed that have gathered FOLD_AFTER (32) pending changes
    SELECT array_agg(p.level), array_agg(p.group_id), array_agg(p.requirement_id)
    INTO levels, groups, requirements
    FROM (SELECT DISTINCT a.level, a.group_id, a.requirement_id
          FROM projections.compliance_status_apply(p_store, m.as_of, m.tz, p_persons) a) k
    CROSS JOIN LATERAL (SELECT k.level, k.group_id, k.requirement_id FROM status_pending x
                        WHERE x.store_id = p_store AND x.level = k.level AND x.group_id = k.group_id
                          AND x.requirement_id = k.requirement_id
                        OFFSET 31 LIMIT 1) p;
    IF levels IS NOT NULL THEN
        PERFORM projections.compliance_status_fold(p_store, levels, groups, requirements);
    END IF;
    -- an upper bound is enough (a void may lower the true maximum): a bound too high only sends
    -- more dates to the fact tables
    UPDATE status_meta SET max_completed = greatest(max_completed,
        (SELECT max(s.last_completed) FROM status s WHERE s.store_id = p_store AND s.person_id = ANY(p_persons)))
    WHERE store_id = p_store;
END;
$fn$;

-- Compute a store's status rows from scratch as of a date in a time zone.
CREATE FUNCTION projections.compliance_status_compute(p_store bigint, p_as_of date, p_tz text) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    DELETE FROM status_summary WHERE store_id = p_store;
    DELETE FROM status_pending WHERE store_id = p_store;
    DELETE FROM status WHERE store_id = p_store;
    DELETE FROM status_units WHERE store_id = p_store;
    INSERT INTO status_meta (store_id, as_of, tz) VALUES (p_store, p_as_of, p_tz)
    ON CONFLICT (store_id) DO UPDATE SET as_of = EXCLUDED.as_of, tz = EXCLUDED.tz, max_completed = NULL,
                                         computed_at = now();
    PERFORM projections.compliance_status_apply(p_store, p_as_of, p_tz, NULL);
    PERFORM projections.compliance_status_fold(p_store, NULL, NULL, NULL);
    UPDATE status_meta SET max_completed = (SELECT max(s.last_completed) FROM status s WHERE s.store_id = p_store)
    WHERE store_id = p_store;
END;
$fn$;

-- Whether anything the people due depend on differs between two dates: an employment starting
-- or ending, or a unit version beginning, after the earlier date and by the later one.
CREATE FUNCTION projections.compliance_dates_differ(p_store bigint, p_a date, p_b date) RETURNS boolean
LANGUAGE sql STABLE AS $$
SELECT EXISTS (SELECT 1 FROM employments e WHERE e.store_id = p_store
                 AND e.valid_from > least(p_a, p_b) AND e.valid_from <= greatest(p_a, p_b))
    OR EXISTS (SELECT 1 FROM employments e WHERE e.store_id = p_store
                 AND e.valid_to > least(p_a, p_b) AND e.valid_to <= greatest(p_a, p_b))
    OR EXISTS (SELECT 1 FROM units u WHERE u.store_id = p_store
                 AND u.valid_from > least(p_a, p_b) AND u.valid_from <= greatest(p_a, p_b))
$$;

-- Whether the status rows of the live read model answer a query as of p_as_of in p_tz for
-- every one of the stores (see the top of this file).
CREATE FUNCTION projections.compliance_status_answers(p_stores bigint[], p_as_of date, p_tz text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = rm_compliance, public AS $$
SELECT count(*) = cardinality(p_stores)
       AND coalesce(bool_and(m.tz = p_tz AND (m.max_completed IS NULL OR m.max_completed <= p_as_of)
                             AND NOT projections.compliance_dates_differ(m.store_id, m.as_of, p_as_of)), true)
FROM status_meta m
WHERE m.store_id = ANY(p_stores)
$$;
