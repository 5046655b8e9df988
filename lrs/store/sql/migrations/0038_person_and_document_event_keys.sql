-- 0038: the events of a person and of an agent's documents are found by index.
--
-- An access request (`spor person export`) and an erasure (`spor person erase`) look for the
-- reference-data events naming a person id or an identifier, and the document events of an
-- agent, by members of the payload. events_reference (0012) holds every non-statement event
-- of a store, and content that saves its State often makes millions of document events: a
-- review measured 1.8 s to find one agent's among 2,000,000 (each payload, json, parsed again),
-- and an erasure holds the store's append lock meanwhile. These partial indexes hold only the
-- kinds they serve, so statements (almost every event) pay nothing, and a document write one
-- or two entries. The queries (lrs/store/sql/person.sql) name the same predicates.
--
-- On a large log the build reads the whole table once, at the upgrade.

CREATE INDEX events_person_id ON events (store_id, (payload->>'person_id')) WHERE kind LIKE 'person.%';
CREATE INDEX events_person_ifi ON events (store_id, (payload->>'ifi')) WHERE kind LIKE 'person.%';
CREATE INDEX events_document_agent ON events (store_id, (payload->>'agentKey')) WHERE kind LIKE 'document.%';
CREATE INDEX events_document_content ON events (store_id, (payload->>'sha256')) WHERE kind LIKE 'document.%';
