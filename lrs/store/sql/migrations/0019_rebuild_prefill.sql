-- 0019: a rebuild extracts the statement facts straight into the read models' tables.
--
-- 0014 had a rebuild of several read models extract the facts of every statement once into
-- statement_facts_cache, in parallel, and then each read model read them back through
-- window_facts, window by window, into its own fact tables. The cache was written and read
-- three times over for nothing but a hand-over, and each read model's reference data was
-- folded only after the whole cache was filled (the cores were idle while the server's Python
-- folded it). A rebuild's first pass now extracts each chunk of positions once
-- (prefill_facts in lrs/store/sql/projections.sql, parallel chunks) and inserts the facts
-- directly into the fact tables of every read model being rebuilt, while each read model folds
-- its reference data on a connection of its own (projections/runner.py, rebuild_concurrently).
-- bench/projections, 1,000,000 statements and 80,000 people, two cores: `rebuild all`
-- 80-95 s -> 65-71 s (three runs of each, alternating, with a throwaway timeline script).
--
-- The windows of live workers read projections.statement_facts directly (as with no cache).

DROP FUNCTION projections.window_facts(bigint, bigint, bigint, bigint, text);
DROP TABLE projections.statement_facts_cache;
