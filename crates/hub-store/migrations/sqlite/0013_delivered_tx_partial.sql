-- Only events the hub delivered to IYS carry a delivered transactionId, and every query of the
-- column compares it with a value (`= …`, `IN (…)`, a join), which implies it is not null. A
-- partial index leaves every other event out: one index entry fewer per recorded change.
DROP INDEX consent_event_delivered_tx;
CREATE INDEX consent_event_delivered_tx ON consent_event (brand_code, delivered_transaction_id)
    WHERE delivered_transaction_id IS NOT NULL;
