-- 0006: tell running servers when a credential changes (revoked, rotated, expired early), so
-- they can drop it from their cache at once; see lrs/store/credential_cache.py.

CREATE FUNCTION notify_credential_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('spor_credentials', coalesce(NEW.key, OLD.key));
    RETURN NULL;
END
$$;

CREATE TRIGGER credentials_notify
    AFTER UPDATE OR DELETE ON credentials
    FOR EACH ROW EXECUTE FUNCTION notify_credential_change();
