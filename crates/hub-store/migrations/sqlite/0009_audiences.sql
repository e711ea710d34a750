-- Automation events, webhooks, analytics counters and segments.

-- One row per state change of a consent (a status that differs from the one before, or a first
-- record), written by the ledger in the same transaction as the change: the transactional
-- outbox that webhooks, NATS and `GET …/events` read. Ids increase per brand in commit order.
CREATE TABLE change_event (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    brand_code     INTEGER NOT NULL,
    event_id       INTEGER NOT NULL,
    recipient      TEXT    NOT NULL,
    recipient_type TEXT    NOT NULL,
    channel        TEXT    NOT NULL,
    category       TEXT,
    old_status     TEXT,
    new_status     TEXT    NOT NULL,
    origin         TEXT    NOT NULL,
    iys_state      TEXT,
    at_ms          INTEGER NOT NULL
);
CREATE INDEX change_event_brand ON change_event (brand_code, id);

-- How far each publisher (NATS) has published each brand's events.
CREATE TABLE event_cursor (
    sink       TEXT    NOT NULL,
    brand_code INTEGER NOT NULL,
    last_id    INTEGER NOT NULL,
    PRIMARY KEY (sink, brand_code)
);

CREATE TABLE webhook (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    brand_code         INTEGER NOT NULL,
    url                TEXT    NOT NULL,
    description        TEXT,
    -- JSON array of event types; empty means all.
    event_types        TEXT    NOT NULL,
    -- The signing secret, sealed with the hub's secret key.
    secret             TEXT    NOT NULL,
    enabled            INTEGER NOT NULL,
    disabled_reason    TEXT,
    -- The last event delivered (or skipped by the filter): delivery resumes after it.
    cursor             INTEGER NOT NULL,
    failures           INTEGER NOT NULL DEFAULT 0,
    failing_since_ms   INTEGER,
    next_attempt_at_ms INTEGER NOT NULL,
    lease_owner        TEXT,
    lease_until_ms     INTEGER,
    created_at_ms      INTEGER NOT NULL,
    updated_at_ms      INTEGER NOT NULL
);
CREATE INDEX webhook_brand ON webhook (brand_code, id);

-- Every delivery attempt, kept for people (the delivery log).
CREATE TABLE webhook_delivery (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id       INTEGER NOT NULL,
    change_event_id  INTEGER NOT NULL,
    attempt          INTEGER NOT NULL,
    manual           INTEGER NOT NULL,
    status_code      INTEGER,
    error            TEXT,
    response         TEXT,
    duration_ms      INTEGER NOT NULL,
    at_ms            INTEGER NOT NULL
);
CREATE INDEX webhook_delivery_hook ON webhook_delivery (webhook_id, id);
-- The log is kept 30 days.
CREATE INDEX webhook_delivery_at ON webhook_delivery (at_ms);

-- Manual redeliveries asked for, sent by the worker before the stream resumes.
CREATE TABLE webhook_redelivery (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id      INTEGER NOT NULL,
    change_event_id INTEGER NOT NULL,
    requested_at_ms INTEGER NOT NULL
);
CREATE INDEX webhook_redelivery_hook ON webhook_redelivery (webhook_id, id);

-- Current consents counted by channel, status and IYS state, kept by triggers in the writing
-- transaction so `…/stats` never scans the consents.
CREATE TABLE consent_tally (
    brand_code INTEGER NOT NULL,
    channel    TEXT    NOT NULL,
    status     TEXT    NOT NULL,
    iys_state  TEXT    NOT NULL,
    n          INTEGER NOT NULL,
    PRIMARY KEY (brand_code, channel, status, iys_state)
);
INSERT INTO consent_tally (brand_code, channel, status, iys_state, n)
    SELECT brand_code, channel, status, iys_state, COUNT(*) FROM consent
    GROUP BY brand_code, channel, status, iys_state;

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

-- Opt-ins and opt-outs per Istanbul day, channel and origin, written with the change events.
CREATE TABLE consent_daily (
    brand_code INTEGER NOT NULL,
    day        TEXT    NOT NULL,
    channel    TEXT    NOT NULL,
    origin     TEXT    NOT NULL,
    opt_ins    INTEGER NOT NULL,
    opt_outs   INTEGER NOT NULL,
    PRIMARY KEY (brand_code, day, channel, origin)
);
-- History recorded before this migration: status changes among the applied events.
INSERT INTO consent_daily (brand_code, day, channel, origin, opt_ins, opt_outs)
    SELECT brand_code, day, channel, origin, SUM(status = 'ONAY'), SUM(status = 'RET')
    FROM (
        SELECT brand_code, date(received_at_ms / 1000 + 10800, 'unixepoch') AS day, channel,
               origin, status,
               LAG(status) OVER (PARTITION BY brand_code, recipient, recipient_type, channel
                                 ORDER BY id) AS before
        FROM consent_event WHERE outcome = 'applied' AND category IS NULL
    )
    WHERE before IS NULL OR before <> status
    GROUP BY brand_code, day, channel, origin;

CREATE TABLE segment (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    brand_code    INTEGER NOT NULL,
    name          TEXT    NOT NULL,
    description   TEXT,
    -- The definition as JSON.
    definition    TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    UNIQUE (brand_code, name)
);
