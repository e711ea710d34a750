-- Coalescing: an unsent row carried by a newer change of the same consent points at its carrier.
ALTER TABLE outbox ADD COLUMN superseded_by INTEGER;

-- The claim reads `outbox_work` (brand, state, deadline) in deadline order and stops after its
-- limit; an index led by next_attempt_at_ms would make it sort every due row instead.
