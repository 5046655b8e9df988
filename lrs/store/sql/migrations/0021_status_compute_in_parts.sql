-- 0021: a store's compliance status rows can be computed in parts, one part of its people each,
-- on several connections at once.
--
-- compliance_status_compute (0011) was one statement on one connection: at 80,000 people
-- (936,000 rows) ~21 s on one core, the last step of `spor projections rebuild all`, and for
-- about half of it the other core had nothing left to do. It is now three steps:
--
--   compliance_status_reset   the store's rows, counts and units removed, its date and zone set;
--   compliance_status_add     the rows of the people named (NULL: everyone due) inserted, their
--                             units and their pending counts added: parts name disjoint sets of
--                             people, so a count per group is the sum of the parts' counts (a
--                             person in two units of a trust counts once there, within the one
--                             part that holds the person);
--   compliance_status_finish  the counts folded into the summary, the latest completion noted.
--
-- compliance_status_compute is the three in one transaction, with everyone in one part, as
-- before. A rebuild (projections/runner.py) runs the parts in transactions of their own on the
-- build schema, which nothing else writes. Parts that meet on a unit or a count key insert those
-- last, in the order of the key (units, then counts), so one waits for the other's commit (a few
-- milliseconds) and never the other way round as well.

SET LOCAL check_function_bodies = off;

CREATE FUNCTION projections.compliance_status_reset(p_store bigint, p_as_of date, p_tz text)
RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    DELETE FROM status_summary WHERE store_id = p_store;
    DELETE FROM status_pending WHERE store_id = p_store;
    DELETE FROM status WHERE store_id = p_store;
    DELETE FROM status_units WHERE store_id = p_store;
    INSERT INTO status_meta (store_id, as_of, tz) VALUES (p_store, p_as_of, p_tz)
    ON CONFLICT (store_id) DO UPDATE SET as_of = EXCLUDED.as_of, tz = EXCLUDED.tz, max_completed = NULL,
                                         computed_at = now();
END;
$fn$;

CREATE FUNCTION projections.compliance_status_add(p_store bigint, p_as_of date, p_tz text, p_persons text[])
RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    -- the rows first, kept for this transaction; then written in three statements, the status
    -- rows (disjoint between parts) first, so that parts meet on units and counts only in the
    -- transaction's last milliseconds
    CREATE TEMPORARY TABLE status_part ON COMMIT DROP AS
    SELECT d.person_id, d.unit_id, d.trust_id, d.region_id, d.requirement_id, d.last_completed,
           CASE WHEN d.last_completed IS NULL THEN '-infinity'::date
                WHEN d.validity_days IS NULL THEN 'infinity'::date
                ELSE d.last_completed + d.validity_days END AS expires_on,
           d.ancestors
    FROM projections.compliance_due(ARRAY[p_store], p_as_of, p_tz, NULL, NULL, p_persons, 'infinity') d;
    ANALYZE status_part;
    INSERT INTO status (store_id, person_id, unit_id, trust_id, region_id, requirement_id, last_completed, expires_on)
    SELECT p_store, n.person_id, n.unit_id, n.trust_id, n.region_id, n.requirement_id, n.last_completed, n.expires_on
    FROM status_part n;
    CREATE TEMPORARY TABLE status_part_counts ON COMMIT DROP AS
    -- (person, unit, requirement) is unique, so a unit counts its rows; a trust or region counts
    -- each person once
    SELECT 'unit' AS level, n.unit_id AS group_id, n.requirement_id, n.expires_on, count(*) AS n
    FROM status_part n GROUP BY n.unit_id, n.requirement_id, n.expires_on
    UNION ALL
    SELECT 'trust', coalesce(n.trust_id, ''), n.requirement_id, n.expires_on, count(DISTINCT n.person_id)
    FROM status_part n GROUP BY coalesce(n.trust_id, ''), n.requirement_id, n.expires_on
    UNION ALL
    SELECT 'region', coalesce(n.region_id, ''), n.requirement_id, n.expires_on, count(DISTINCT n.person_id)
    FROM status_part n GROUP BY coalesce(n.region_id, ''), n.requirement_id, n.expires_on;
    INSERT INTO status_units AS u (store_id, unit_id, ancestors)
    SELECT p_store, n.unit_id, min(n.ancestors) FROM status_part n GROUP BY n.unit_id ORDER BY n.unit_id
    ON CONFLICT (store_id, unit_id) DO NOTHING;
    INSERT INTO status_pending AS x (store_id, level, group_id, requirement_id, expires_on, n)
    SELECT p_store, c.level, c.group_id, c.requirement_id, c.expires_on, c.n FROM status_part_counts c
    ORDER BY c.level, c.group_id, c.requirement_id, c.expires_on
    ON CONFLICT (store_id, level, group_id, requirement_id, expires_on) DO UPDATE SET n = x.n + EXCLUDED.n;
    DROP TABLE status_part, status_part_counts;
END;
$fn$;

CREATE FUNCTION projections.compliance_status_finish(p_store bigint) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM projections.compliance_status_fold(p_store, NULL, NULL, NULL);
    UPDATE status_meta SET max_completed = (SELECT max(s.last_completed) FROM status s WHERE s.store_id = p_store)
    WHERE store_id = p_store;
END;
$fn$;

CREATE OR REPLACE FUNCTION projections.compliance_status_compute(p_store bigint, p_as_of date, p_tz text)
RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM projections.compliance_status_reset(p_store, p_as_of, p_tz);
    PERFORM projections.compliance_status_add(p_store, p_as_of, p_tz, NULL);
    PERFORM projections.compliance_status_finish(p_store);
END;
$fn$;
