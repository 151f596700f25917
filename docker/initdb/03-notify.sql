SET client_min_messages = warning;

-- txval's lookup cache (txval_lookup_cache ... notify=txval): a
-- notification on channel "txval" for every change of a row the rules
-- read, so that every txval drops its copy of that row.
--
-- Payload: '<table>:<key>@<microseconds since the epoch>' for the key a
-- row had before a change and, when an UPDATE changes it or an INSERT
-- adds it, for the new key too (an INSERT matters: txval also keeps the
-- absence of a row); '*@<microseconds>' on TRUNCATE (every entry goes).
-- The time is the server's clock when the transaction commits (the row
-- triggers are deferred constraint triggers: they run at COMMIT); txval
-- measures the notification lag from it. Keys longer than 128 characters
-- are skipped: txval never looks such an id up.
--
-- Bulk changes send one notification per row; for a large load, skip
-- the triggers (SET session_replication_role = replica, as a superuser)
-- and end with SELECT pg_notify('txval', '*').
--
-- Idempotent: run it again (psql -f) after changing the channel below.

CREATE OR REPLACE FUNCTION txval_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    channel  text := TG_ARGV[0];
    key_col  text := TG_ARGV[1];
    at       text := '@' || (extract(epoch FROM clock_timestamp())
                             * 1000000)::bigint;
    old_key  text;
    new_key  text;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify(channel, '*' || at);
        RETURN NULL;
    END IF;

    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        old_key := to_jsonb(OLD) ->> key_col;
    END IF;

    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        new_key := to_jsonb(NEW) ->> key_col;
    END IF;

    IF old_key IS NOT NULL AND length(old_key) <= 128 THEN
        PERFORM pg_notify(channel, TG_TABLE_NAME || ':' || old_key || at);
    END IF;

    IF new_key IS NOT NULL AND new_key IS DISTINCT FROM old_key
       AND length(new_key) <= 128
    THEN
        PERFORM pg_notify(channel, TG_TABLE_NAME || ':' || new_key || at);
    END IF;

    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS txval_notify ON merchants;
CREATE CONSTRAINT TRIGGER txval_notify
    AFTER INSERT OR UPDATE OR DELETE ON merchants
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION txval_notify('txval', 'id');
DROP TRIGGER IF EXISTS txval_notify_truncate ON merchants;
CREATE TRIGGER txval_notify_truncate AFTER TRUNCATE ON merchants
    FOR EACH STATEMENT EXECUTE FUNCTION txval_notify('txval', 'id');

DROP TRIGGER IF EXISTS txval_notify ON cards;
CREATE CONSTRAINT TRIGGER txval_notify
    AFTER INSERT OR UPDATE OR DELETE ON cards
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION txval_notify('txval', 'token');
DROP TRIGGER IF EXISTS txval_notify_truncate ON cards;
CREATE TRIGGER txval_notify_truncate AFTER TRUNCATE ON cards
    FOR EACH STATEMENT EXECUTE FUNCTION txval_notify('txval', 'token');

DROP TRIGGER IF EXISTS txval_notify ON blocked_bins;
CREATE CONSTRAINT TRIGGER txval_notify
    AFTER INSERT OR UPDATE OR DELETE ON blocked_bins
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION txval_notify('txval', 'bin');
DROP TRIGGER IF EXISTS txval_notify_truncate ON blocked_bins;
CREATE TRIGGER txval_notify_truncate AFTER TRUNCATE ON blocked_bins
    FOR EACH STATEMENT EXECUTE FUNCTION txval_notify('txval', 'bin');
