-- Every committed change to a session wakes whoever watches sessions (the
-- portal's live view, the CLI's status line), on every gateway replica, with
-- no polling. A trigger rather than application code, so that no write path
-- can forget to notify. Updates that change nothing notify nobody.
CREATE FUNCTION notify_session_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('slurmgate_sessions', NEW.id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER sessions_notify_insert AFTER INSERT ON sessions
    FOR EACH ROW EXECUTE FUNCTION notify_session_change();
CREATE TRIGGER sessions_notify_update AFTER UPDATE ON sessions
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION notify_session_change();
