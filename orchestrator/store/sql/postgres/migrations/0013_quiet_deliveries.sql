-- 0013_quiet_deliveries: a message stored already consumed notifies nobody (issue #21, wake
-- storms). Why it exists: a send to a recv waiting in the sender's own process inserts its
-- message consumed, with that recv's checkpoint, in one statement (Store.deliver_message); the
-- recv gets the payload from the send. Its 'message' notification woke no one (the mailbox's
-- recv has what it waited for, and nothing else can take a consumed message), yet cost the
-- server a pg_notify per message and every listening process a notification to route: about 5 %
-- of a worker's CPU in a wake storm.

DROP TRIGGER messages_notify ON messages;
CREATE TRIGGER messages_notify AFTER INSERT ON messages
    FOR EACH ROW WHEN (NOT NEW.consumed)
    EXECUTE FUNCTION notify_message();
