-- Coalescing: an unsent row carried by a newer change of the same consent points at its carrier.
ALTER TABLE outbox ADD COLUMN superseded_by BIGINT;

-- The claim's predicate and order: a brand's due rows in a state, closest deadline first.
CREATE INDEX outbox_claim ON outbox (brand_code, state, next_attempt_at_ms, deadline_ms, id);
