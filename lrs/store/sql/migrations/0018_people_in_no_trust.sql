-- 0018: the people of a region in no trust, counted rather than estimated.
--
-- Small-group suppression (projections.queries) treats a region's row as its trusts' rows plus
-- its people in no trust (staff employed at the region unit or a department right under it).
-- That cell was estimated as the region minus its trusts, which is too low when a person is
-- employed both in a trust and in no trust; an estimate too low can let a small group through.
-- The analyst queries now count the cell ('rest' level of the roll-up). From the status rows
-- that is the few rows whose trust is NULL, found by this partial index; rebuilds make it too
-- (create_read_model below), after their rows are in, like every secondary index.

ALTER FUNCTION projections.create_read_model(text, text[]) RENAME TO create_read_model_0010;

CREATE FUNCTION projections.create_read_model(target text, families text[]) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM projections.create_read_model_0010(target, families);
    IF 'status' = ANY(families) THEN
        EXECUTE format('CREATE INDEX ON %I.status (store_id, region_id, requirement_id, person_id) '
                       'WHERE trust_id IS NULL', target);
    END IF;
END;
$fn$;

CREATE INDEX ON rm_compliance.status (store_id, region_id, requirement_id, person_id) WHERE trust_id IS NULL;
