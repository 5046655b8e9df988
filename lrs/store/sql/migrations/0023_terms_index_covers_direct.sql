-- 0023: a statement query reads its filter terms from the index alone.
--
-- A query by agent or activity without related_agents / related_activities keeps only the
-- term rows with direct = true. direct was not in the key (store_id, term, position), so every
-- row the index scan found was read from the statement_terms heap to check it: one random page
-- read per row, since a person's statements lie across the whole history. Measured on the
-- benchmark's store of 1,000,000 statements with the operating system's cache dropped and the
-- indexes in memory (a store too large for memory): agent queries p95 157 ms before, 16 ms with
-- direct carried in the index. At 10,000,000 statements the agent query was 49 ms p95.
--
-- The key stays (store_id, term, position); direct is carried as an INCLUDE column, so the
-- filter and the other-terms EXISTS checks are index-only scans once the visibility map marks
-- the pages all-visible. statement_terms only grows (a StatementRef's forward terms update
-- direct, rarely), so autovacuum is asked to visit it after 1% new rows rather than 20%:
-- at 90,000,000 rows the default left the newest 18,000,000 to be checked in the heap.
--
-- The index is built in the migration's transaction: appends wait while it reads the table once
-- (about 25 s per 10,000,000 rows here).

ALTER TABLE statement_terms
    DROP CONSTRAINT statement_terms_pkey,
    ADD CONSTRAINT statement_terms_pkey PRIMARY KEY (store_id, term, position) INCLUDE (direct);
ALTER TABLE statement_terms SET (autovacuum_vacuum_insert_scale_factor = 0.01);
