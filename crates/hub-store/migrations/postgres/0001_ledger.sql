-- The hub's ledger on PostgreSQL. Instants are epoch milliseconds; IYS dates stay
-- 'YYYY-MM-DD HH:MM:SS' Istanbul wall-clock text.

CREATE TABLE brand (
    brand_code     BIGINT PRIMARY KEY,
    iys_code       BIGINT NOT NULL,
    name           TEXT    NOT NULL,
    mode           TEXT    NOT NULL,
    iys_connection TEXT,
    created_at_ms  BIGINT NOT NULL,
    updated_at_ms  BIGINT NOT NULL
);

-- Append-only history: never updated except its IYS delivery fields.
CREATE TABLE consent_event (
    id                 BIGSERIAL PRIMARY KEY,
    brand_code         BIGINT NOT NULL,
    recipient          TEXT    NOT NULL,
    recipient_type     TEXT    NOT NULL,
    channel            TEXT    NOT NULL,
    category           TEXT,
    profile_id         TEXT,
    status             TEXT    NOT NULL,
    consent_date       TEXT    NOT NULL,
    source             TEXT    NOT NULL,
    origin             TEXT    NOT NULL,
    actor              TEXT,
    evidence           TEXT,
    hold               BIGINT,
    outcome            TEXT    NOT NULL,
    received_at_ms     BIGINT NOT NULL,
    iys_transaction_id TEXT,
    iys_creation_date  TEXT,
    iys_error          TEXT,
    prev_hash          TEXT    NOT NULL,
    hash               TEXT    NOT NULL
);
CREATE INDEX consent_event_recipient ON consent_event (brand_code, recipient, id);
CREATE UNIQUE INDEX consent_event_iys_tx ON consent_event (brand_code, iys_transaction_id)
    WHERE iys_transaction_id IS NOT NULL;

-- Current state, derived from the history.
CREATE TABLE consent (
    brand_code     BIGINT NOT NULL,
    recipient      TEXT    NOT NULL,
    recipient_type TEXT    NOT NULL,
    channel        TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    consent_date   TEXT    NOT NULL,
    source         TEXT    NOT NULL,
    last_event_id  BIGINT NOT NULL,
    iys_state      TEXT    NOT NULL,
    iys_error      TEXT,
    conflict       BIGINT NOT NULL,
    hold           BIGINT NOT NULL,
    deadline_ms    BIGINT,
    updated_at_ms  BIGINT NOT NULL,
    PRIMARY KEY (brand_code, recipient, recipient_type, channel)
);

CREATE TABLE category (
    brand_code    BIGINT NOT NULL,
    code          TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (brand_code, code)
);

-- Category consent per recipient, or per profile ('profile:<id>').
CREATE TABLE category_consent (
    brand_code    BIGINT NOT NULL,
    subject       TEXT    NOT NULL,
    category      TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    consent_date  TEXT    NOT NULL,
    source        TEXT    NOT NULL,
    last_event_id BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (brand_code, subject, category)
);

CREATE TABLE profile (
    brand_code    BIGINT NOT NULL,
    external_id   TEXT    NOT NULL,
    attributes    TEXT,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (brand_code, external_id)
);

CREATE TABLE profile_address (
    brand_code  BIGINT NOT NULL,
    external_id TEXT    NOT NULL,
    recipient   TEXT    NOT NULL,
    PRIMARY KEY (brand_code, external_id, recipient)
);
CREATE INDEX profile_address_recipient ON profile_address (brand_code, recipient);

-- One row per event that must reach IYS.
CREATE TABLE outbox (
    id                 BIGSERIAL PRIMARY KEY,
    brand_code         BIGINT NOT NULL,
    event_id           BIGINT NOT NULL,
    recipient          TEXT    NOT NULL,
    recipient_type     TEXT    NOT NULL,
    channel            TEXT    NOT NULL,
    status             TEXT    NOT NULL,
    consent_date       TEXT    NOT NULL,
    source             TEXT    NOT NULL,
    state              TEXT    NOT NULL,
    attempts           BIGINT NOT NULL DEFAULT 0,
    next_attempt_at_ms BIGINT NOT NULL,
    lease_owner        TEXT,
    lease_until_ms     BIGINT,
    deadline_ms        BIGINT NOT NULL,
    request_id         TEXT,
    sub_request_id     TEXT,
    last_error         TEXT,
    created_at_ms      BIGINT NOT NULL
);
CREATE INDEX outbox_work ON outbox (brand_code, state, deadline_ms);

CREATE TABLE chain_head (
    brand_code    BIGINT PRIMARY KEY,
    last_hash     TEXT    NOT NULL,
    last_event_id BIGINT NOT NULL
);

CREATE TABLE api_key (
    id            TEXT    PRIMARY KEY,
    hash          TEXT    NOT NULL UNIQUE,
    name          TEXT    NOT NULL,
    brand_code    BIGINT,
    scopes        TEXT    NOT NULL,
    created_at_ms BIGINT NOT NULL,
    revoked_at_ms BIGINT
);

CREATE TABLE idempotency (
    brand_code    BIGINT NOT NULL,
    key           TEXT    NOT NULL,
    request_hash  TEXT    NOT NULL,
    status        BIGINT NOT NULL,
    body          TEXT    NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (brand_code, key)
);
