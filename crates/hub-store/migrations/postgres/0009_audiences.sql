-- Automation events, webhooks, analytics counters and segments.

-- One row per state change of a consent (a status that differs from the one before, or a first
-- record), written by the ledger in the same transaction as the change: the transactional
-- outbox that webhooks, NATS and `GET …/events` read. Ids are taken under the brand's chain
-- lock, so they increase per brand in commit order.
CREATE TABLE change_event (
    id             BIGSERIAL PRIMARY KEY,
    brand_code     BIGINT NOT NULL,
    event_id       BIGINT NOT NULL,
    recipient      TEXT   NOT NULL,
    recipient_type TEXT   NOT NULL,
    channel        TEXT   NOT NULL,
    category       TEXT,
    old_status     TEXT,
    new_status     TEXT   NOT NULL,
    origin         TEXT   NOT NULL,
    iys_state      TEXT,
    at_ms          BIGINT NOT NULL
);
CREATE INDEX change_event_brand ON change_event (brand_code, id);

-- How far each publisher (NATS) has published each brand's events.
CREATE TABLE event_cursor (
    sink       TEXT   NOT NULL,
    brand_code BIGINT NOT NULL,
    last_id    BIGINT NOT NULL,
    PRIMARY KEY (sink, brand_code)
);

CREATE TABLE webhook (
    id                 BIGSERIAL PRIMARY KEY,
    brand_code         BIGINT NOT NULL,
    url                TEXT   NOT NULL,
    description        TEXT,
    -- JSON array of event types; empty means all.
    event_types        TEXT   NOT NULL,
    -- The signing secret, sealed with the hub's secret key.
    secret             TEXT   NOT NULL,
    enabled            BIGINT NOT NULL,
    disabled_reason    TEXT,
    -- The last event delivered (or skipped by the filter): delivery resumes after it.
    cursor             BIGINT NOT NULL,
    failures           BIGINT NOT NULL DEFAULT 0,
    failing_since_ms   BIGINT,
    next_attempt_at_ms BIGINT NOT NULL,
    lease_owner        TEXT,
    lease_until_ms     BIGINT,
    created_at_ms      BIGINT NOT NULL,
    updated_at_ms      BIGINT NOT NULL
);
CREATE INDEX webhook_brand ON webhook (brand_code, id);

-- Every delivery attempt, kept for people (the delivery log).
CREATE TABLE webhook_delivery (
    id               BIGSERIAL PRIMARY KEY,
    webhook_id       BIGINT NOT NULL,
    change_event_id  BIGINT NOT NULL,
    attempt          BIGINT NOT NULL,
    manual           BIGINT NOT NULL,
    status_code      BIGINT,
    error            TEXT,
    response         TEXT,
    duration_ms      BIGINT NOT NULL,
    at_ms            BIGINT NOT NULL
);
CREATE INDEX webhook_delivery_hook ON webhook_delivery (webhook_id, id);
-- The log is kept 30 days.
CREATE INDEX webhook_delivery_at ON webhook_delivery (at_ms);

-- Manual redeliveries asked for, sent by the worker before the stream resumes.
CREATE TABLE webhook_redelivery (
    id              BIGSERIAL PRIMARY KEY,
    webhook_id      BIGINT NOT NULL,
    change_event_id BIGINT NOT NULL,
    requested_at_ms BIGINT NOT NULL
);
CREATE INDEX webhook_redelivery_hook ON webhook_redelivery (webhook_id, id);

-- Current consents counted by channel, status and IYS state, kept by statement triggers in the
-- writing transaction so `…/stats` never scans the consents. Each statement appends its net
-- deltas as new rows (no shared row is updated, so concurrent writers never wait on each other
-- or deadlock); readers sum, and the rows of a brand are folded together now and then.
CREATE TABLE consent_tally (
    brand_code BIGINT NOT NULL,
    channel    TEXT   NOT NULL,
    status     TEXT   NOT NULL,
    iys_state  TEXT   NOT NULL,
    n          BIGINT NOT NULL
);
CREATE INDEX consent_tally_brand ON consent_tally (brand_code);
INSERT INTO consent_tally (brand_code, channel, status, iys_state, n)
    SELECT brand_code, channel, status, iys_state, COUNT(*) FROM consent
    GROUP BY brand_code, channel, status, iys_state;

CREATE FUNCTION consent_tally_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO consent_tally (brand_code, channel, status, iys_state, n)
        SELECT brand_code, channel, status, iys_state, COUNT(*) FROM new_rows
        GROUP BY brand_code, channel, status, iys_state;
    RETURN NULL;
END $$;
CREATE FUNCTION consent_tally_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO consent_tally (brand_code, channel, status, iys_state, n)
        SELECT brand_code, channel, status, iys_state, SUM(n) FROM (
            SELECT brand_code, channel, status, iys_state, -1 AS n FROM old_rows
            UNION ALL
            SELECT brand_code, channel, status, iys_state, 1 AS n FROM new_rows
        ) AS d
        GROUP BY brand_code, channel, status, iys_state
        HAVING SUM(n) <> 0;
    RETURN NULL;
END $$;
CREATE FUNCTION consent_tally_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO consent_tally (brand_code, channel, status, iys_state, n)
        SELECT brand_code, channel, status, iys_state, -COUNT(*) FROM old_rows
        GROUP BY brand_code, channel, status, iys_state;
    RETURN NULL;
END $$;
CREATE TRIGGER consent_tally_insert AFTER INSERT ON consent
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION consent_tally_insert();
CREATE TRIGGER consent_tally_update AFTER UPDATE ON consent
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION consent_tally_update();
CREATE TRIGGER consent_tally_delete AFTER DELETE ON consent
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION consent_tally_delete();

-- Opt-ins and opt-outs per Istanbul day, channel and origin, written with the change events
-- (under the brand's chain lock, so one writer per brand at a time).
CREATE TABLE consent_daily (
    brand_code BIGINT NOT NULL,
    day        TEXT   NOT NULL,
    channel    TEXT   NOT NULL,
    origin     TEXT   NOT NULL,
    opt_ins    BIGINT NOT NULL,
    opt_outs   BIGINT NOT NULL,
    PRIMARY KEY (brand_code, day, channel, origin)
);
-- History recorded before this migration: status changes among the applied events.
INSERT INTO consent_daily (brand_code, day, channel, origin, opt_ins, opt_outs)
    SELECT brand_code, day, channel, origin,
           COUNT(*) FILTER (WHERE status = 'ONAY'), COUNT(*) FILTER (WHERE status = 'RET')
    FROM (
        SELECT brand_code,
               to_char(to_timestamp(received_at_ms / 1000.0) AT TIME ZONE 'Europe/Istanbul',
                       'YYYY-MM-DD') AS day,
               channel, origin, status,
               LAG(status) OVER (PARTITION BY brand_code, recipient, recipient_type, channel
                                 ORDER BY id) AS before
        FROM consent_event WHERE outcome = 'applied' AND category IS NULL
    ) AS e
    WHERE before IS NULL OR before <> status
    GROUP BY brand_code, day, channel, origin;

CREATE TABLE segment (
    id            BIGSERIAL PRIMARY KEY,
    brand_code    BIGINT NOT NULL,
    name          TEXT   NOT NULL,
    description   TEXT,
    -- The definition as JSON.
    definition    TEXT   NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    UNIQUE (brand_code, name)
);
