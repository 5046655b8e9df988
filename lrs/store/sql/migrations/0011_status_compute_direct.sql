-- 0011: computing a store's compliance status rows from scratch writes them directly.
--
-- 0010 computed a store (after a rebuild, a requirement or org change, a new day with an
-- effective-dated change) through the incremental path with every person named: each new row
-- checked against the (just emptied) old rows, and the (level, group, person, requirement,
-- expiry) sets of new and old rows compared with EXCEPT. At 80,000 people (936,000 rows) that
-- took 33-77 s, of which deciding who is due took 7 s. Here the rows are inserted as they come,
-- and the pending counts are the distinct (person, expiry) pairs per group: a person in two
-- units of one trust counts once there, as in the incremental path, whose rules are unchanged.
-- The fold into the summary is the same function as before.

SET LOCAL check_function_bodies = off;

CREATE OR REPLACE FUNCTION projections.compliance_status_compute(p_store bigint, p_as_of date, p_tz text)
RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    DELETE FROM status_summary WHERE store_id = p_store;
    DELETE FROM status_pending WHERE store_id = p_store;
    DELETE FROM status WHERE store_id = p_store;
    DELETE FROM status_units WHERE store_id = p_store;
    INSERT INTO status_meta (store_id, as_of, tz) VALUES (p_store, p_as_of, p_tz)
    ON CONFLICT (store_id) DO UPDATE SET as_of = EXCLUDED.as_of, tz = EXCLUDED.tz, max_completed = NULL,
                                         computed_at = now();
    WITH new_rows AS MATERIALIZED (
        SELECT d.person_id, d.unit_id, d.trust_id, d.region_id, d.requirement_id, d.last_completed,
               CASE WHEN d.last_completed IS NULL THEN '-infinity'::date
                    WHEN d.validity_days IS NULL THEN 'infinity'::date
                    ELSE d.last_completed + d.validity_days END AS expires_on,
               d.ancestors
        FROM projections.compliance_due(ARRAY[p_store], p_as_of, p_tz, NULL, NULL, NULL, 'infinity') d
    ),
    rows_written AS (
        INSERT INTO status (store_id, person_id, unit_id, trust_id, region_id, requirement_id, last_completed,
                            expires_on)
        SELECT p_store, n.person_id, n.unit_id, n.trust_id, n.region_id, n.requirement_id, n.last_completed,
               n.expires_on
        FROM new_rows n
    ),
    units_written AS (
        INSERT INTO status_units (store_id, unit_id, ancestors)
        SELECT DISTINCT ON (n.unit_id) p_store, n.unit_id, n.ancestors FROM new_rows n
    )
    INSERT INTO status_pending (store_id, level, group_id, requirement_id, expires_on, n)
    -- (person, unit, requirement) is unique, so a unit counts its rows; a trust or region counts
    -- each person once
    SELECT p_store, 'unit', n.unit_id, n.requirement_id, n.expires_on, count(*)
    FROM new_rows n GROUP BY n.unit_id, n.requirement_id, n.expires_on
    UNION ALL
    SELECT p_store, 'trust', coalesce(n.trust_id, ''), n.requirement_id, n.expires_on, count(DISTINCT n.person_id)
    FROM new_rows n GROUP BY coalesce(n.trust_id, ''), n.requirement_id, n.expires_on
    UNION ALL
    SELECT p_store, 'region', coalesce(n.region_id, ''), n.requirement_id, n.expires_on, count(DISTINCT n.person_id)
    FROM new_rows n GROUP BY coalesce(n.region_id, ''), n.requirement_id, n.expires_on;
    PERFORM projections.compliance_status_fold(p_store, NULL, NULL, NULL);
    UPDATE status_meta SET max_completed = (SELECT max(s.last_completed) FROM status s WHERE s.store_id = p_store)
    WHERE store_id = p_store;
END;
$fn$;

-- Keeping the rows current: a unit nobody is due in any more leaves status_units too (0010 kept
-- it, so a read model kept current could hold a unit row that a rebuild does not; found by the
-- property test). The units a window may have emptied are those whose unit-level counts moved.
CREATE OR REPLACE FUNCTION projections.compliance_status_refresh(p_store bigint, p_persons text[]) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE m record; moved_levels text[]; moved_groups text[]; moved_requirements text[];
        levels text[]; groups text[]; requirements text[];
BEGIN
    SELECT * INTO m FROM status_meta WHERE store_id = p_store;
    IF NOT FOUND OR p_persons IS NULL OR cardinality(p_persons) = 0 THEN
        RETURN;
    END IF;
    SELECT array_agg(a.level), array_agg(a.group_id), array_agg(a.requirement_id)
    INTO moved_levels, moved_groups, moved_requirements
    FROM (SELECT DISTINCT a.level, a.group_id, a.requirement_id
          FROM projections.compliance_status_apply(p_store, m.as_of, m.tz, p_persons) a) a;
    -- (no count moved does not mean no row changed: a later completion of a requirement that
    -- never expires changes last_completed, not the expiry; max_completed below still follows)
    IF moved_levels IS NOT NULL THEN
        DELETE FROM status_units u
        WHERE u.store_id = p_store
          AND u.unit_id IN (SELECT k.group_id FROM unnest(moved_levels, moved_groups) AS k(level, group_id)
                            WHERE k.level = 'unit')
          AND NOT EXISTS (SELECT 1 FROM status s WHERE s.store_id = p_store AND s.unit_id = u.unit_id);
        -- fold the keys this changed that have gathered FOLD_AFTER (32) pending changes
        SELECT array_agg(k.level), array_agg(k.group_id), array_agg(k.requirement_id)
        INTO levels, groups, requirements
        FROM unnest(moved_levels, moved_groups, moved_requirements) AS k(level, group_id, requirement_id)
        WHERE EXISTS (SELECT 1 FROM status_pending x
                      WHERE x.store_id = p_store AND x.level = k.level AND x.group_id = k.group_id
                        AND x.requirement_id = k.requirement_id
                      OFFSET 31);
        IF levels IS NOT NULL THEN
            PERFORM projections.compliance_status_fold(p_store, levels, groups, requirements);
        END IF;
    END IF;
    -- an upper bound is enough (a void may lower the true maximum): a bound too high only sends
    -- more dates to the fact tables
    UPDATE status_meta SET max_completed = greatest(max_completed,
        (SELECT max(s.last_completed) FROM status s WHERE s.store_id = p_store AND s.person_id = ANY(p_persons)))
    WHERE store_id = p_store;
END;
$fn$;
