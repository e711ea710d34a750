-- Opt-outs always reach IYS.
--
-- Movements from IYS are de-duplicated on their content, never on transactionId alone: IYS
-- gives movements of one address and type in the same second one shared transactionId.
DROP INDEX consent_event_iys_tx;
CREATE INDEX consent_event_iys_tx ON consent_event (brand_code, iys_transaction_id)
    WHERE iys_transaction_id IS NOT NULL;

-- Bulk submissions: when (to escalate a request IYS never answers) and at which position
-- (to match results by index when a subRequestId is missing).
ALTER TABLE outbox ADD COLUMN submitted_at_ms INTEGER;
ALTER TABLE outbox ADD COLUMN bulk_index INTEGER;

-- A brand's dispatch paused after an account-level failure (credentials, rights,
-- subscription, quota, an answer that is not IYS's): items stay pending meanwhile.
CREATE TABLE dispatch_pause (
    brand_code      INTEGER PRIMARY KEY,
    reason          TEXT   NOT NULL,
    since_ms        INTEGER NOT NULL,
    paused_until_ms INTEGER NOT NULL,
    failures        INTEGER NOT NULL
);

-- First RETs used to be kept locally; IYS may hold an ONAY the hub never saw, so every RET
-- still kept locally is queued for IYS now (oldest first: their deadlines have passed).
INSERT INTO audit_log (brand_code, at_ms, actor, action, detail)
SELECT c.brand_code, (CAST(strftime('%s', 'now') AS INTEGER) * 1000), 'migration', 'requeue_kept_local',
       '{"queued":' || CAST(COUNT(*) AS TEXT) || '}'
FROM consent c JOIN consent_event e ON e.id = c.last_event_id
WHERE c.status = 'RET' AND c.iys_state = 'not_in_iys' AND e.outcome = 'kept_local'
  AND c.channel IN ('MESAJ', 'ARAMA', 'EPOSTA')
GROUP BY c.brand_code;

INSERT INTO outbox (brand_code, event_id, recipient, recipient_type, channel, status, consent_date, source, state, attempts, next_attempt_at_ms, deadline_ms, created_at_ms)
SELECT c.brand_code, c.last_event_id, c.recipient, c.recipient_type, c.channel, c.status, c.consent_date, c.source, 'pending', 0, (CAST(strftime('%s', 'now') AS INTEGER) * 1000), (CAST(strftime('%s', 'now') AS INTEGER) * 1000), (CAST(strftime('%s', 'now') AS INTEGER) * 1000)
FROM consent c JOIN consent_event e ON e.id = c.last_event_id
WHERE c.status = 'RET' AND c.iys_state = 'not_in_iys' AND e.outcome = 'kept_local'
  AND c.channel IN ('MESAJ', 'ARAMA', 'EPOSTA')
ORDER BY c.last_event_id;

UPDATE consent SET iys_state = 'pending', deadline_ms = (CAST(strftime('%s', 'now') AS INTEGER) * 1000)
WHERE status = 'RET' AND iys_state = 'not_in_iys' AND channel IN ('MESAJ', 'ARAMA', 'EPOSTA')
  AND EXISTS (SELECT 1 FROM consent_event e WHERE e.id = consent.last_event_id AND e.outcome = 'kept_local');
