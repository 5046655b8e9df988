-- 0012: the reference-data events of a store found by an index.
--
-- Every projection window asks for the window's reference-data events (every kind but
-- statements), which are few: without an index that read every event row of the window (~18 ms
-- per 5,000 events, a second or more per projection and rebuild at 200,000 statements). The
-- partial index holds only those events (and document events, the other kinds that are not
-- statements), so statement appends never write to it. Built in the migration's transaction:
-- on an existing log, appends wait while it reads the events table once.

CREATE INDEX events_reference ON events (store_id, position) WHERE kind <> 'statement';
