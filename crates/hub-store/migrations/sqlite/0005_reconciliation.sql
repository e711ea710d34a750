-- Daily reconciliation (mutabakat) with IYS's movement file.
--
-- IYS's creationDate of a movement the hub recorded from IYS (pull, push, reconcile), so the
-- reconciler knows which day of IYS's file each one belongs to (deliveries already keep theirs).
CREATE INDEX consent_event_iys_created ON consent_event (brand_code, iys_creation_date)
    WHERE iys_creation_date IS NOT NULL;

-- A delivery's outbox row by its event (deliveries IYS has no record of are queued again).
CREATE INDEX outbox_event ON outbox (brand_code, event_id);

-- One row per brand and day: the latest result, so a restart resumes and the API can show it.
CREATE TABLE reconcile_day (
    brand_code     INTEGER NOT NULL,
    report_date    TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    hash           TEXT,
    iys_rows       INTEGER NOT NULL DEFAULT 0,
    hub_rows       INTEGER NOT NULL DEFAULT 0,
    matched        INTEGER NOT NULL DEFAULT 0,
    missing_in_hub INTEGER NOT NULL DEFAULT 0,
    missing_in_iys INTEGER NOT NULL DEFAULT 0,
    mismatched     INTEGER NOT NULL DEFAULT 0,
    unreadable     INTEGER NOT NULL DEFAULT 0,
    applied        INTEGER NOT NULL DEFAULT 0,
    requeued       INTEGER NOT NULL DEFAULT 0,
    remaining      INTEGER NOT NULL DEFAULT 0,
    needs_person   INTEGER NOT NULL DEFAULT 0,
    examples       TEXT,
    error          TEXT,
    attempts       INTEGER NOT NULL DEFAULT 0,
    next_at_ms     INTEGER,
    agreed_at_ms   INTEGER,
    lease_owner    TEXT,
    lease_until_ms INTEGER,
    updated_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (brand_code, report_date)
);
