-- What the IYS engines need: whether IYS knows a consent, delivery results, cursors, the shared
-- token, and an audit log of brand-level actions (mode switches).

ALTER TABLE consent ADD COLUMN iys_known BIGINT NOT NULL DEFAULT 0;
ALTER TABLE consent_event ADD COLUMN delivered_transaction_id TEXT;
CREATE INDEX consent_event_delivered_tx ON consent_event (brand_code, delivered_transaction_id);
CREATE INDEX outbox_key ON outbox (brand_code, recipient, recipient_type, channel, id);

CREATE TABLE sync_cursor (
    brand_code      BIGINT NOT NULL,
    source          TEXT    NOT NULL,
    cursor          TEXT,
    updated_at_ms   BIGINT NOT NULL,
    last_success_ms BIGINT,
    PRIMARY KEY (brand_code, source)
);

CREATE TABLE iys_token (
    token_key     TEXT    PRIMARY KEY,
    state         TEXT    NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

CREATE TABLE audit_log (
    id         BIGSERIAL PRIMARY KEY,
    brand_code BIGINT,
    at_ms      BIGINT NOT NULL,
    actor      TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    detail     TEXT
);
