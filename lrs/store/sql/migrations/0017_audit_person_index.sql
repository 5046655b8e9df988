-- 0017: "who read my records" (spor audit --person) found by index.
--
-- audit_by_person matches a person three ways: the reader (person, indexed since 0004), an xAPI
-- agent parameter (request ->> 'agent') and the person ids an analyst read returned rows about
-- (request -> 'persons', up to a page of ids). The last two had no index, so every search read
-- the whole audit trail, which only grows. With these each way is found by its own index
-- (audit_by_person runs one branch per way). Built in the migration's transaction: reads being
-- audited wait while it reads the audit trail once.

CREATE INDEX audit_log_persons ON audit_log USING gin ((request -> 'persons'));
CREATE INDEX audit_log_agent ON audit_log ((request ->> 'agent'));
