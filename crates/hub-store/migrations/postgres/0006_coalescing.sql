-- Coalescing: an unsent row carried by a newer change of the same consent points at its carrier.
ALTER TABLE outbox ADD COLUMN superseded_by BIGINT;

-- The claim reads `outbox_work` (brand, state, deadline) in deadline order and stops after its
-- limit; an index led by next_attempt_at_ms would make it sort every due row instead.

-- Claims rewrite only the lease columns, which no index holds: room on each page lets
-- PostgreSQL update those rows in place (HOT) instead of touching every index.
ALTER TABLE outbox SET (fillfactor = 70);
