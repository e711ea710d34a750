-- Consents clustered by their key (WITHOUT ROWID). A rowid table with a primary key is two
-- B-trees: a lookup descends the key's index and then the table, and a write updates both.
-- Clustered, a send-time check or a ledger write is one descent (campaign filter and
-- ledger-batch measured in BENCHMARKS.md). Dropping the old table drops its index and
-- triggers; they are created again on the new one, unchanged.
CREATE TABLE consent_clustered (
    brand_code     INTEGER NOT NULL,
    recipient      TEXT    NOT NULL,
    recipient_type TEXT    NOT NULL,
    channel        TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    consent_date   TEXT    NOT NULL,
    source         TEXT    NOT NULL,
    last_event_id  INTEGER NOT NULL,
    iys_state      TEXT    NOT NULL,
    iys_error      TEXT,
    conflict       INTEGER NOT NULL,
    hold           INTEGER NOT NULL,
    deadline_ms    INTEGER,
    updated_at_ms  INTEGER NOT NULL,
    iys_known      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (brand_code, recipient, recipient_type, channel)
) WITHOUT ROWID;

INSERT INTO consent_clustered (brand_code, recipient, recipient_type, channel, status,
        consent_date, source, last_event_id, iys_state, iys_error, conflict, hold, deadline_ms,
        updated_at_ms, iys_known)
    SELECT brand_code, recipient, recipient_type, channel, status, consent_date, source,
        last_event_id, iys_state, iys_error, conflict, hold, deadline_ms, updated_at_ms, iys_known
    FROM consent ORDER BY brand_code, recipient, recipient_type, channel;

DROP TABLE consent;
ALTER TABLE consent_clustered RENAME TO consent;

CREATE INDEX consent_changed ON consent (brand_code, updated_at_ms);

CREATE TRIGGER consent_tally_insert AFTER INSERT ON consent BEGIN
    INSERT INTO consent_tally (brand_code, channel, status, iys_state, n)
        VALUES (NEW.brand_code, NEW.channel, NEW.status, NEW.iys_state, 1)
        ON CONFLICT (brand_code, channel, status, iys_state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER consent_tally_update AFTER UPDATE OF status, iys_state ON consent
    WHEN OLD.status IS NOT NEW.status OR OLD.iys_state IS NOT NEW.iys_state BEGIN
    UPDATE consent_tally SET n = n - 1 WHERE brand_code = OLD.brand_code
        AND channel = OLD.channel AND status = OLD.status AND iys_state = OLD.iys_state;
    INSERT INTO consent_tally (brand_code, channel, status, iys_state, n)
        VALUES (NEW.brand_code, NEW.channel, NEW.status, NEW.iys_state, 1)
        ON CONFLICT (brand_code, channel, status, iys_state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER consent_tally_delete AFTER DELETE ON consent BEGIN
    UPDATE consent_tally SET n = n - 1 WHERE brand_code = OLD.brand_code
        AND channel = OLD.channel AND status = OLD.status AND iys_state = OLD.iys_state;
END;
