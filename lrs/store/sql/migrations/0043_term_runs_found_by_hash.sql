-- 0043: the filter-term runs found by a hash of their term.
--
-- The runs' primary key (store_id, term, first_position) held each term's text: an agent's key,
-- an activity IRI, ~50-120 bytes an entry, compared byte by byte along a long shared prefix
-- ("o:https://kurs.example.org/activities/..."). Its entries were the largest part of what an
-- append writes into a B-tree (~4 runs a statement) and the index outgrew the processor's caches
-- first: PostgreSQL's CPU a statement grew from ~60 to ~88 us between a store of 30,000 and one of
-- 120,000 statements (bench/append.py --groups 600). Keyed by a 64-bit hash of the term, an entry
-- is ~30 bytes: ~7 us a statement less at 120,000 (bench/README, "the runs found by a hash").
--
-- The hash is PostgreSQL's own (hashtextextended, which hash partitioning relies on staying the
-- same across releases). Two terms may share a hash: every reader compares the term as well, so
-- a shared hash costs a run read and skipped, never a wrong answer. The index is not unique (the
-- runs of one term stay disjoint as 0042 says: only spor_append_group, spor_terms_add and
-- spor_terms_remove write them). A term no longer has to fit a B-tree entry (~2,700 bytes): a
-- long verb id is stored and found like any other.
--
-- The hash is a stored column, not an index on the expression: the server reads under row-level
-- security (0004), where a condition applying a function that is not leakproof to a column
-- (hashtextextended(term, 0) = ...) is checked only after the policy's, so it cannot be an index
-- condition: each query read every run of the store (bench/ingest (d): 4.5 s at 1,000,000
-- statements). `term_key = hashtextextended($2, 0)` applies the function to the parameter only.
-- Every query of the runs by term names both `term_key = hashtextextended(X, 0)` and `term = X`
-- (tests/integration/test_term_runs_queries.py checks each plan, as the service role under
-- row-level security, finds the runs by term_key).

ALTER TABLE statement_term_runs
    DROP CONSTRAINT statement_term_runs_pkey,
    ADD COLUMN term_key bigint GENERATED ALWAYS AS (hashtextextended(term, 0)) STORED;
CREATE INDEX statement_term_runs_by_term ON statement_term_runs (store_id, term_key, first_position);
-- The term and its hash name the same runs: without this the planner multiplies the two
-- conditions' selectivities, expects a run or two for a course every statement names, and sorts
-- all of its runs where reading the newest few in index order would do (bench/ingest (d), course
-- related: p95 7 -> 20 ms at 300,000 statements). With it, the hash adds nothing to the estimate.
CREATE STATISTICS statement_term_runs_term_key (dependencies) ON term, term_key FROM statement_term_runs;
ANALYZE statement_term_runs;

-- As 0042, the run that may hold a position found by the hash.
CREATE OR REPLACE FUNCTION spor_terms_add(p_store bigint, p_terms text[], p_positions bigint[], p_direct boolean[])
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    e record;
    k record;
    i integer;
BEGIN
    FOR e IN
        SELECT x.term, x.position, bool_or(x.direct) AS direct
        FROM unnest(p_terms, p_positions, p_direct) AS x(term, position, direct)
        GROUP BY x.term, x.position
        ORDER BY x.term, x.position
    LOOP
        SELECT r.first_position, r.last_position, r.offsets, r.direct INTO k
        FROM statement_term_runs r
        WHERE r.store_id = p_store AND r.term_key = hashtextextended(e.term, 0)
          AND r.term = e.term AND r.first_position <= e.position
        ORDER BY r.first_position DESC
        LIMIT 1
        FOR UPDATE;
        IF NOT FOUND OR k.last_position < e.position THEN
            INSERT INTO statement_term_runs (store_id, term, first_position, last_position, offsets, direct)
            VALUES (p_store, e.term, e.position, e.position, ARRAY[0], ARRAY[e.direct]);
            CONTINUE;
        END IF;
        i := array_position(k.offsets, (e.position - k.first_position)::integer);
        IF i IS NULL THEN
            UPDATE statement_term_runs r
            SET (offsets, direct) = (
                SELECT array_agg(u.o ORDER BY u.o), array_agg(u.d ORDER BY u.o)
                FROM unnest(k.offsets || (e.position - k.first_position)::integer, k.direct || e.direct) AS u(o, d))
            WHERE r.store_id = p_store AND r.term_key = hashtextextended(e.term, 0)
              AND r.term = e.term AND r.first_position = k.first_position;
        ELSIF e.direct AND NOT k.direct[i] THEN
            UPDATE statement_term_runs r SET direct[i] = true
            WHERE r.store_id = p_store AND r.term_key = hashtextextended(e.term, 0)
              AND r.term = e.term AND r.first_position = k.first_position;
        END IF;
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION spor_terms_remove(p_store bigint, p_terms text[], p_positions bigint[])
RETURNS TABLE (term text, at_position bigint) LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    g record;
    k record;
    v_offsets integer[];
    v_direct boolean[];
BEGIN
    FOR g IN
        SELECT x.term AS t, r.first_position AS f, array_agg(DISTINCT (x.position - r.first_position)) AS gone
        -- the hashes worked out apart: a function applied to a column (x.term) is no index
        -- condition under row-level security, x.key is
        FROM unnest(p_terms, p_positions,
                    ARRAY(SELECT hashtextextended(v.u, 0) FROM unnest(p_terms) WITH ORDINALITY AS v(u, i) ORDER BY v.i))
            AS x(term, position, key)
        CROSS JOIN LATERAL (
            SELECT r.first_position FROM statement_term_runs r
            WHERE r.store_id = p_store AND r.term_key = x.key
              AND r.term = x.term AND r.first_position <= x.position
            ORDER BY r.first_position DESC LIMIT 1) r
        GROUP BY x.term, r.first_position
        ORDER BY x.term, r.first_position
    LOOP
        SELECT r.offsets, r.direct INTO k FROM statement_term_runs r
        WHERE r.store_id = p_store AND r.term_key = hashtextextended(g.t, 0)
          AND r.term = g.t AND r.first_position = g.f
        FOR UPDATE;
        SELECT array_agg(u.o ORDER BY u.o), array_agg(u.d ORDER BY u.o) INTO v_offsets, v_direct
        FROM unnest(k.offsets, k.direct) AS u(o, d)
        WHERE u.o <> ALL (g.gone);
        IF v_offsets IS NULL THEN
            DELETE FROM statement_term_runs r
            WHERE r.store_id = p_store AND r.term_key = hashtextextended(g.t, 0)
              AND r.term = g.t AND r.first_position = g.f;
        ELSIF cardinality(v_offsets) < cardinality(k.offsets) THEN
            UPDATE statement_term_runs r SET offsets = v_offsets, direct = v_direct
            WHERE r.store_id = p_store AND r.term_key = hashtextextended(g.t, 0)
              AND r.term = g.t AND r.first_position = g.f;
        END IF;
        RETURN QUERY SELECT g.t, g.f + u.o FROM unnest(g.gone) AS u(o) WHERE u.o = ANY (k.offsets);
    END LOOP;
END
$$;
