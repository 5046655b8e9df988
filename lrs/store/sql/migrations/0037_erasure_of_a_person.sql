-- 0037: erasing a person is the one way an event leaves the log (GDPR article 17).
--
-- The log is append-only (0001): triggers refuse UPDATE, DELETE and TRUNCATE of events for
-- everyone, and the service's role has no privilege to try (0004). DOMAIN.md asks Spor to
-- support erasure: a person's own statements, documents and reference data must be removable
-- on request. `spor person erase` (lrs/person_erasure.py) does it on an owner connection, in one
-- transaction under the store's append lock, which says so with the transaction-local setting
-- `spor.erasure = on`; that transaction also appends a `person.erased` event (counts only, no
-- identifier) and records the erasure in the audit trail. UPDATE and TRUNCATE stay refused
-- always, DELETE without the setting, and spor_app still cannot DELETE at all: the setting is no
-- privilege, only the owner's statement that this delete is an erasure (docs/architecture.md).
-- The audit trail shares the function and stays append-only, erasure or not: who read a
-- person's records is kept (its own retention; docs/security.md).

CREATE OR REPLACE FUNCTION refuse_event_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- (the audit trail's triggers call this function too: its rows are never erased)
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'events' AND current_setting('spor.erasure', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION '% is append-only: % on it is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
