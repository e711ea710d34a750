-- Every write of a consent's send state, in commit order: the log that keeps the in-memory
-- send-state mirror (src/mirror.rs) exact. SQLite runs one write transaction at a time, so a
-- row's seq (its rowid: one above the largest) follows commit order; a mirror that applied the
-- log up to seq N equals the table as of that commit. Triggers catch every writer: the ledger,
-- settlements, mode switches, an import run by another process.
-- The store prunes the oldest rows and always keeps the newest, so seq never goes back.
CREATE TABLE consent_touch (
    seq            INTEGER PRIMARY KEY,
    brand_code     INTEGER NOT NULL,
    recipient      TEXT    NOT NULL,
    recipient_type TEXT    NOT NULL,
    channel        TEXT    NOT NULL
);

CREATE TRIGGER consent_touch_insert AFTER INSERT ON consent BEGIN
    INSERT INTO consent_touch (brand_code, recipient, recipient_type, channel)
        VALUES (NEW.brand_code, NEW.recipient, NEW.recipient_type, NEW.channel);
END;

-- Only what a send-time check reads; an update that leaves all four as they were is no news.
CREATE TRIGGER consent_touch_update AFTER UPDATE OF status, source, iys_state, hold ON consent
    WHEN OLD.status IS NOT NEW.status OR OLD.source IS NOT NEW.source
      OR OLD.iys_state IS NOT NEW.iys_state OR OLD.hold IS NOT NEW.hold BEGIN
    INSERT INTO consent_touch (brand_code, recipient, recipient_type, channel)
        VALUES (NEW.brand_code, NEW.recipient, NEW.recipient_type, NEW.channel);
END;

CREATE TRIGGER consent_touch_delete AFTER DELETE ON consent BEGIN
    INSERT INTO consent_touch (brand_code, recipient, recipient_type, channel)
        VALUES (OLD.brand_code, OLD.recipient, OLD.recipient_type, OLD.channel);
END;
