-- 0036: linking an e-mail address to a person links its mbox_sha1sum form too.
--
-- xAPI names a mailbox either by `mbox` (the mailto IRI) or by `mbox_sha1sum` (the hex SHA-1 of
-- that IRI, Data 2.4.2.3), and content that keeps addresses out of its statements sends the
-- latter. The people import links `mailto:` addresses; a completion sent under the sha1 form of
-- a linked address counted as a person of its own in every read model, not as the person (found
-- by the access-request export, lrs/person_export.py, which looks for both forms).
--
-- The reference-data fold (projections.facts.Batch, Python alone: no SQL folds links) now links
-- and unlinks `sha1:<hex of mailto:ADDRESS>` with each `mbox:mailto:ADDRESS`, the address as the
-- key has it (its domain lowered, 0033). Nothing in the schema changes. Links folded before this
-- migration lack the sha1 form until `spor projections rebuild all` (lrs.store.migrate
-- READ_MODEL_RULES says so to whoever migrates a database that holds statements).

-- (one statement: a file of comments alone is no query, which the driver refuses)
SELECT 1;
