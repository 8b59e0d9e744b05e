-- 0013_quiet_deliveries: a message stored already consumed notifies nobody (see the PostgreSQL
-- migration of the same name for why): a send delivered to a recv waiting in its own process.

DROP TRIGGER messages_notify;
CREATE TRIGGER messages_notify AFTER INSERT ON messages
    WHEN NOT NEW.consumed
BEGIN
    SELECT notify('message', NEW.destination_id || char(31) || NEW.topic);
END;
