-- 0005: wake projection workers when events are appended (a hint; workers also poll).
-- One notification per appending statement (statement-level trigger), so a group commit of a
-- thousand statements costs one NOTIFY, delivered at commit.

CREATE FUNCTION projections.notify_append() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('spor_events', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER events_notify
    AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION projections.notify_append();
