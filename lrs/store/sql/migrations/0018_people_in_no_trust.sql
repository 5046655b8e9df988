-- 0018: the people of a region in no trust, counted rather than estimated.
--
-- Small-group suppression (projections.queries) treats a region's row as its trusts' rows plus
-- its people in no trust (staff of the region unit, or of any unit under it outside a trust).
-- That cell was estimated as the region minus its trusts, which is too low when a person is
-- employed in two trusts or both in a trust and in no trust; an estimate too low can let a
-- small group through. The analyst queries now count the cell ('rest' level of the roll-up).
-- From the status rows those are the rows whose trust is NULL (region staff: few, in the
-- health region's tree), found by this partial index; rebuilds make it too (create_read_model
-- below), after their rows are in, like every secondary index. Built here in the migration's
-- transaction: one read of the status rows (~1-2 s for a region), while projection writes wait.
-- A rebuild that started before this migration swaps in tables without the index: answers stay
-- right, the no-trust count reads every status row until the next rebuild.

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
